"""GIVEN a real tf.data pipeline with a planted bottleneck, WHEN it runs under
``plumber profile``, THEN plumber names the planted stage and its kind."""

from __future__ import annotations

import pytest
from conftest import PIPELINES, REPO

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.profile import Profile

pytestmark = pytest.mark.slow


def profile_and_diagnose(plumber_cli, script, *script_args):
    run = plumber_cli("profile", "-o", "out", script, "--", *script_args)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.report_path.exists()
    profile = Profile.load(run.profile_path)
    (diagnosis,) = diagnose_all(profile)
    return run, profile, diagnosis


def test_expensive_map_held_to_one_call_is_named_as_a_parallelism_bottleneck(plumber_cli):
    run, profile, diagnosis = profile_and_diagnose(plumber_cli, PIPELINES / "expensive_map.py")
    assert diagnosis.input_bound
    assert diagnosis.bottleneck_stage == "map-0"
    assert diagnosis.bottleneck_kind == "parallelism"
    # One call of a CPU-bound map on 2 cores: more calls use the idle core. How much of it
    # is free depends on the machine's other load, so the gain asked for is modest.
    assert diagnosis.rate_if_fixed > 1.2 * diagnosis.observed_rate
    assert "expensive_map.py:26" in run.stderr
    best = diagnosis.recommendations[0]
    assert best.stage_id == "map-0" and best.source.line == 26


def test_slow_sequential_read_is_named_as_latency_bound(plumber_cli):
    run, profile, diagnosis = profile_and_diagnose(plumber_cli, PIPELINES / "slow_read.py")
    assert diagnosis.input_bound
    assert diagnosis.bottleneck_stage == "map-0"
    assert diagnosis.bottleneck_kind == "latency"
    fetch = next(s for s in diagnosis.stages if s.stage_id == "map-0")
    assert fetch.wait_fraction > 0.7
    assert "slow_read.py:42" in run.stderr


def test_consumer_slower_than_the_pipeline_is_not_blamed_on_the_input(plumber_cli):
    run, profile, diagnosis = profile_and_diagnose(plumber_cli, PIPELINES / "slow_consumer.py")
    assert not diagnosis.input_bound
    assert diagnosis.bottleneck_kind == "consumer"
    assert diagnosis.stall_share < 0.1
    assert "not the bottleneck" in diagnosis.summary


def test_keras_fit_example_is_profiled_through_its_compiled_training_loop(plumber_cli):
    run, profile, diagnosis = profile_and_diagnose(
        plumber_cli, REPO / "examples" / "tf_images.py", "--epochs", "2", "--images", "512"
    )
    (pipeline,) = profile.pipelines
    assert pipeline.consumer.source == "tf_model_gaps"
    assert pipeline.consumer.steps == 2 * 16
    decode = pipeline.stage("map-0")
    assert decode.source.file.endswith("tf_images.py")
    assert decode.rewrite == "map_parallelization"
    assert diagnosis.input_bound
    assert diagnosis.bottleneck_stage == "map-0"
