"""Epochs made of fresh iterators: the real CLI counts passes per pipeline, not per iterator.

A Python epoch loop over one dataset, Keras ``fit(epochs=3)`` and a DataLoader
iterated three times each read their data three times through three
iterators. The profile must say so (three complete passes), so that a cache
after the deterministic decode is proposed with its rate averaged over the
run; a loop that leaves every epoch early made only partial passes, and gets
no cache (TF discards an unfinished one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PIPELINES, CliRun, run_plumber

from plumber.analyzers.diagnose import diagnose
from plumber.records.profile import Profile
from plumber.tuner.derive import derive_plan

pytestmark = pytest.mark.slow


def profiled(plumber_cli, tmp_path, script: str, *script_args: str) -> Profile:
    run = plumber_cli("profile", "-o", "out", PIPELINES / script, "--",
                      "--data", tmp_path / "data", *script_args)
    assert run.returncode == 0, run.stderr[-3000:]
    return Profile.load(run.profile_path)


def feasible_caches(profile: Profile) -> dict[str, str]:
    """Stage id -> reason of every cache the analysis would allow."""
    return {w.stage_id: w.reason for w in diagnose(profile).what_ifs
            if w.knob == "cache" and w.feasible}


@pytest.fixture(scope="module")
def tuned_epoch_loop(tmp_path_factory) -> tuple[CliRun, Path]:
    """``plumber tune`` of the epoch loop over TFRecords, once: its saved profile is the
    profile of that loop, so the pass counts are checked on it without a second run."""
    folder = tmp_path_factory.mktemp("epoch-loop")
    script = PIPELINES / "jpeg_epoch_loop.py"
    run = run_plumber(["tune", "-o", str(folder / "out" / "plan.json"), "--rounds", "1",
                       "--reuse-process",
                       str(script), "--", "--source", "tfrecord", "--data",
                       str(folder / "data")], cwd=folder)
    return run, script


def test_a_python_epoch_loop_over_tfrecords_reads_three_whole_passes_and_gets_a_cache(
    tuned_epoch_loop
):
    run, _ = tuned_epoch_loop
    assert run.returncode == 0, run.stderr[-3000:]
    assert_three_whole_passes_and_a_cache(Profile.load(run.profile_path))


def test_a_python_epoch_loop_over_files_reads_three_whole_passes_and_gets_a_cache(
    plumber_cli, tmp_path
):
    assert_three_whole_passes_and_a_cache(
        profiled(plumber_cli, tmp_path, "jpeg_epoch_loop.py", "--source", "files"))


def assert_three_whole_passes_and_a_cache(profile: Profile) -> None:
    (pipeline,) = profile.pipelines
    assert [(p.elements, p.complete) for p in pipeline.passes] == [(10, True)] * 3
    caches = feasible_caches(profile)
    assert "map-0" in caches, diagnose(profile).what_ifs
    assert "averaged over the run's 3 passes" in caches["map-0"]


def test_a_loop_that_leaves_every_epoch_early_gets_no_cache(plumber_cli, tmp_path):
    profile = profiled(plumber_cli, tmp_path, "jpeg_epoch_loop.py", "--break-after", "4")
    (pipeline,) = profile.pipelines
    assert [(p.elements, p.complete) for p in pipeline.passes] == [(4, False)] * 3
    assert feasible_caches(profile) == {}
    (refused,) = {w.reason for w in diagnose(profile).what_ifs if w.knob == "cache"}
    assert "no iterator was seen reading the data to its end" in refused


@pytest.mark.parametrize("source", ["tfrecord", "files"])
def test_keras_fit_for_three_epochs_reads_three_whole_passes(plumber_cli, tmp_path, source):
    profile = profiled(plumber_cli, tmp_path, "keras_fit_epochs.py", "--source", source)
    (pipeline,) = profile.pipelines
    # Keras also makes iterators that only peek at the spec or wait for an epoch that
    # never comes: they deliver nothing and are no pass.
    assert [(p.elements, p.complete) for p in pipeline.passes] == [(10, True)] * 3
    assert "averaged over the run's 3 passes" in feasible_caches(profile)["map-0"]


def test_a_dataloader_iterated_three_times_reads_three_whole_passes(plumber_cli, tmp_path):
    profile = profiled(plumber_cli, tmp_path, "torch_loader_epochs.py")
    (pipeline,) = profile.pipelines
    assert [(p.elements, p.complete) for p in pipeline.passes] == [(8, True)] * 3
    # Whether the cache pays over them is close here: storing a sample costs about what
    # decoding it does. Either way the cache is weighed over the run's three passes.
    (fetch_cache,) = [w for w in diagnose(profile).what_ifs
                      if w.knob == "cache" and w.stage_id == "fetch"]
    assert "the run's 3 passes" in fetch_cache.reason, fetch_cache.reason


def test_tune_plans_a_cache_for_the_epoch_loop_and_verifies_it(tuned_epoch_loop):
    run, script = tuned_epoch_loop
    assert run.returncode == 0, run.stderr[-3000:]
    assert " tuned (" in run.stderr or "is not faster" in run.stderr, run.stderr[-2000:]
    profile = Profile.load(run.profile_path)
    (pipeline,) = derive_plan(profile, tuple(diagnose(profile, p) for p in profile.pipelines),
                              script).pipelines
    assert any(s.cache for s in pipeline.settings), pipeline.settings


def test_a_compiled_function_that_runs_out_of_data_completes_the_pass_of_its_one_iterator():
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    from plumber.tf.hooks import TfHooks
    from plumber.tf.pipelines import build_pipelines

    before = polymorphic_function.Function.__dict__["__call__"]
    dataset = tf.data.Dataset.range(12).filter(lambda x: x >= 0).batch(4)
    step = tf.function(lambda iterator: next(iterator))
    pair = tf.function(lambda a, b: (next(a), next(b)))
    with TfHooks() as hooks:
        drained = iter(dataset)
        with pytest.raises(tf.errors.OutOfRangeError):
            while True:
                step(drained)
        left = iter(dataset)
        step(left)
        # Two iterators run out in one call: which one ended is unknown, so neither is whole.
        first, second = iter(dataset), iter(dataset)
        with pytest.raises(tf.errors.OutOfRangeError):
            while True:
                pair(first, second)
    assert polymorphic_function.Function.__dict__["__call__"] is before
    (pipeline,) = build_pipelines(hooks, cpu_probe_s=0)
    assert [(p.elements, p.complete) for p in pipeline.passes] == [
        (3, True), (1, False), (3, False), (3, False)]
