"""GIVEN real PyTorch scripts (PNG/JPEG files, PIL, torchvision) with planted bottlenecks,
WHEN they run unmodified under ``plumber profile``, THEN the saved profile describes each
DataLoader as docs/torch-pipelines.md says: its stages, their times, its workers."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
from conftest import PIPELINES

from plumber.records.profile import Pipeline, Profile

# Checked without importing: torchvision imported into a process that holds
# TensorFlow (the tf tests' modules) crashes it; the scripts run in their own.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("torch", "torchvision", "PIL")),
        reason="needs torch, torchvision and pillow",
    ),
]

CHAIN = ("fetch", "transform_0", "transform_1", "transform_2", "collate")


def line_of(script: Path, text: str) -> int:
    lines = script.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def profile_of(
    plumber_cli, script: Path, *options: str, script_args: tuple[str, ...] = (), expect: int = 0
) -> tuple[object, Profile]:
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", *options, script, "--",
                      *script_args, timeout=120)
    assert run.returncode == expect, run.stderr[-3000:]
    assert run.report_path.exists(), run.stderr[-3000:]
    return run, Profile.load(run.profile_path)


def only_pipeline(profile: Profile) -> Pipeline:
    assert profile.run.framework == "torch"
    (pipeline,) = profile.pipelines
    return pipeline


def test_an_expensive_transform_in_forked_workers_has_the_most_cpu(plumber_cli, tmp_path):
    script = PIPELINES / "torch_expensive_transform.py"
    run, profile = profile_of(plumber_cli, script)
    pipeline = only_pipeline(profile)
    assert [s.id for s in pipeline.stages] == ["workers", *CHAIN]
    blur = pipeline.stage("transform_1")
    assert blur.op == "GaussianBlur" and blur.knobs == {"index": 1}
    assert pipeline.stage("transform_0").knobs == {"index": 0, "random": True}
    cpu = {s.id: s.stats.cpu_time_s for s in pipeline.stages if s.id != "workers"}
    assert max(cpu, key=cpu.get) == "transform_1", cpu
    assert blur.stats.elements == 2 * 96 and blur.stats.parallelism == 2
    pool = pipeline.stage("workers")
    assert pool.source.line == line_of(script, "loader = DataLoader(")
    assert pool.stats.elements == 2 * 12
    knobs = pool.knobs
    assert (knobs["sampler"], knobs["start_method"], knobs["num_workers"]) == (
        "EvensThenOdds", "fork", 2)
    assert knobs["cardinality"] == 96 and knobs["map_style"]
    assert len(list((tmp_path / "markers").iterdir())) == 4  # the user's worker_init_fn ran
    assert len(pipeline.workers) == 4 and sum(w.elements for w in pipeline.workers) == 192
    assert pipeline.consumer.steps == 24
    assert pipeline.element_spec == "[Tensor[8, 3, 96, 96] float32, Tensor[8] int64]"
    assert_cache_costs_measured(pipeline)


def assert_cache_costs_measured(pipeline: Pipeline) -> None:
    """Each cache point carries what storing and reading back one of its samples cost."""
    for stage in pipeline.stages:
        stats = stage.stats
        if stage.id in ("workers", "collate"):
            assert stats.sample_cache_store_s is None and stats.sample_cache_read_s is None
        else:
            assert stats.sample_cache_store_s > 0 and stats.sample_cache_read_s > 0, stage.id


def test_a_latency_bound_fetch_waits_far_more_than_it_computes(plumber_cli):
    run, profile = profile_of(
        plumber_cli, PIPELINES / "torch_slow_fetch.py", "--steps", "6",
        script_args=("--workers", "2"),
    )
    pipeline = only_pipeline(profile)
    assert profile.run.bounded_by == "steps"
    assert pipeline.consumer.steps == 6
    fetch = pipeline.stage("fetch").stats
    assert fetch.elements >= 24
    assert fetch.wall_time_s > 5 * fetch.cpu_time_s
    assert fetch.wall_time_s >= 0.02 * fetch.elements * 0.9


def test_main_process_loading_driven_by_a_trainer_is_profiled(plumber_cli):
    script = PIPELINES / "torch_slow_fetch.py"
    run, profile = profile_of(plumber_cli, script)
    assert "steps 16" in run.stdout
    pipeline = only_pipeline(profile)
    pool = pipeline.stage("workers")
    assert pool.knobs["start_method"] == "main" and pool.knobs["parallelism"] == 1
    assert pool.source.function == "make_loader"
    assert pool.source.line == line_of(script, "return DataLoader(")
    assert pipeline.workers == ()
    assert pipeline.consumer.steps == 16
    assert [s.op for s in pipeline.stages] == [
        "DataLoader", "__getitem__", "CenterCrop", "ToTensor", "default_collate"]
    fetch = pipeline.stage("fetch").stats
    assert fetch.elements == 64 and fetch.wall_time_s > 5 * fetch.cpu_time_s
    assert pipeline.consumer.wait_s > 0.02 * 64 * 0.9
    assert_cache_costs_measured(pipeline)


def test_spawned_persistent_workers_read_an_iterable_dataset_defined_in_the_script(
    plumber_cli, tmp_path
):
    run, profile = profile_of(plumber_cli, PIPELINES / "torch_spawn_iterable.py")
    assert "batches 16" in run.stdout
    pipeline = only_pipeline(profile)
    pool = pipeline.stage("workers")
    assert pool.knobs["start_method"] == "spawn" and pool.knobs["persistent_workers"]
    assert not pool.knobs["map_style"] and "cardinality" not in pool.knobs
    assert pipeline.stage("fetch").op == "__iter__"
    # A container of the script's own is one stage: only torchvision's Compose is known to
    # apply its list in order, and a cache replaying its parts could drop its own logic.
    assert pipeline.stage("transform_0").op == "Pipeline"
    assert not any(s.id == "transform_1" for s in pipeline.stages)
    assert pipeline.stage("transform_0").stats.elements == 96
    assert pipeline.stage("fetch").stats.bytes_produced == 96 * 64 * 64 * 3
    assert len(pipeline.workers) == 2
    assert len(list((tmp_path / "markers").iterdir())) == 2  # persistent: started once
    assert pipeline.consumer.steps == 16


def test_a_worker_that_raises_fails_the_script_and_the_stage_carries_the_error(plumber_cli):
    run, profile = profile_of(plumber_cli, PIPELINES / "torch_failing_worker.py", expect=1)
    assert "ValueError: bad sample 7: not a PNG file" in run.stderr
    assert "DataLoader worker process 1" in profile.run.error
    pipeline = only_pipeline(profile)
    assert pipeline.stage("fetch").error == "ValueError: bad sample 7: not a PNG file"
    assert pipeline.stage("transform_0").error is None
    assert any(note.startswith("worker 1 (pid ") and "raised in fetch" in note
               for note in pipeline.notes), pipeline.notes
    assert pipeline.consumer.steps == 3


def test_each_framework_is_loaded_only_by_the_script_that_uses_it(plumber_cli, tmp_path):
    torch_script = tmp_path / "only_torch.py"
    torch_script.write_text(textwrap.dedent("""
        import sys
        from torch.utils.data import DataLoader
        for batch in DataLoader(list(range(8)), batch_size=4):
            pass
        print("tensorflow loaded:", "tensorflow" in sys.modules)
    """))
    tf_script = tmp_path / "only_tf.py"
    tf_script.write_text(textwrap.dedent("""
        import sys
        import tensorflow as tf
        for batch in tf.data.Dataset.range(8).batch(4):
            pass
        print("torch loaded:", "torch" in sys.modules)
    """))
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", torch_script)
    assert run.returncode == 0 and "tensorflow loaded: False" in run.stdout, run.stderr
    assert Profile.load(run.profile_path).run.framework == "torch"
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", tf_script)
    assert run.returncode == 0 and "torch loaded: False" in run.stdout, run.stderr
    assert Profile.load(run.profile_path).run.framework == "tensorflow"
