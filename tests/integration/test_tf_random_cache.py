"""GIVEN a multi-epoch tf.data pipeline with augmentation written as public code writes
it, WHEN it is profiled and analysed, THEN a cache may go after the deterministic decode
but never after the augmentation; without augmentation the later stage stays cacheable."""

from __future__ import annotations

import pytest
from conftest import PIPELINES

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.profile import Profile

pytestmark = pytest.mark.slow

SCRIPT = PIPELINES / "augment_layers_epochs.py"


def profiled(plumber_cli, augment: str):
    run = plumber_cli("profile", "-o", "out", SCRIPT, "--", "--augment", augment)
    assert run.returncode == 0, run.stderr[-3000:]
    profile = Profile.load(run.profile_path)
    (diagnosis,) = diagnose_all(profile)
    (pipeline,) = profile.pipelines
    return pipeline, diagnosis


def feasible_caches(diagnosis) -> list[str]:
    return [w.stage_id for w in diagnosis.what_ifs if w.knob == "cache" and w.feasible]


@pytest.mark.parametrize("augment", ["keras", "numpy"])
def test_no_cache_after_a_keras_layer_or_numpy_randomness(plumber_cli, augment):
    pipeline, diagnosis = profiled(plumber_cli, augment)
    augmentation = pipeline.stage("map-1").knobs
    assert augmentation.get("random") is True or augmentation.get("stateful") is True
    caches = feasible_caches(diagnosis)
    assert "map-0" in caches, [w.reason for w in diagnosis.what_ifs]
    assert "map-1" not in caches and "batch-0" not in caches


def test_a_deterministic_resize_after_the_decode_can_still_be_cached(plumber_cli):
    pipeline, diagnosis = profiled(plumber_cli, "none")
    resize = pipeline.stage("map-1").knobs
    assert "random" not in resize and "stateful" not in resize
    assert "map-1" in feasible_caches(diagnosis) or "batch-0" in feasible_caches(diagnosis)
