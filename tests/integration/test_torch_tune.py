"""``plumber tune`` on PyTorch scripts: each planted bottleneck gets the change that removes it.

As for tf.data (test_tune.py), speed is the benchmark's business: these tests
check the plan the model derives from the saved profile, that tune verified
it and reported the outcome, and that the kept plan is the derived one.
"""

from __future__ import annotations

import pytest
from conftest import PIPELINES

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.plan import Plan
from plumber.records.profile import Profile
from plumber.tuner.derive import derive_plan

pytestmark = pytest.mark.slow

VERIFIED = (" tuned (", "is not faster; keeping the pipeline as written")


@pytest.fixture(autouse=True)
def _needs_torchvision():
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")


def tuned(plumber_cli, tmp_path, script, *script_args):
    out = tmp_path / "out"
    # --reuse-process: no torch import per measuring run (tests/integration/test_tune.py
    # measures in fresh processes, as users do)
    run = plumber_cli("tune", "-o", out / "plan.json", "--rounds", "1", "--reuse-process",
                      script, "--", *script_args)
    assert run.returncode == 0, run.stderr[-3000:]
    assert any(outcome in run.stderr for outcome in VERIFIED), run.stderr[-2000:]
    profile = Profile.load(out / "profile.json")
    diagnoses = diagnose_all(profile)
    derived = derive_plan(profile, diagnoses, script)
    saved = Plan.load(out / "plan.json")
    assert not saved.pipelines or [p.settings for p in saved.pipelines] == [
        p.settings for p in derived.pipelines]
    (pipeline,) = derived.pipelines
    return diagnoses[0], {s.stage_id: s for s in pipeline.settings}


def test_a_waiting_fetch_in_the_main_process_gets_workers_beyond_the_cores(plumber_cli, tmp_path):
    diagnosis, settings = tuned(plumber_cli, tmp_path, PIPELINES / "torch_slow_fetch.py",
                                "--workers", "0", "--epochs", "3")
    assert (diagnosis.bottleneck_stage, diagnosis.bottleneck_kind) == ("workers", "latency")
    workers = settings["workers"]
    # 32 samples in batches of 4: Little's law asks for more, an epoch has 8 batches.
    assert workers.parallelism == 8
    assert "Little's law" in workers.reason and "an epoch has 8 batches" in workers.reason
    assert workers.persistent_workers is True
    assert workers.stage.kind == "workers" and workers.stage.file == "torch_slow_fetch.py"


def test_an_expensive_transform_gets_the_cores_and_a_cache_before_the_random_flip(
    plumber_cli, tmp_path
):
    diagnosis, settings = tuned(plumber_cli, tmp_path, PIPELINES / "torch_expensive_transform.py",
                                "--workers", "0", "--flip-last", "--epochs", "3")
    assert diagnosis.bottleneck_stage == "workers"
    assert "transform_0 (GaussianBlur)" in diagnosis.summary
    assert settings["workers"].parallelism == 2
    cached = [s for s in settings.values() if s.cache]
    assert [s.stage_id for s in cached] == ["transform_0"]
    assert cached[0].cache == "memory"
