"""The model of a worker pool (a torch DataLoader): its workers run fetch,
transforms and collation in series, so the pool is one stage to the bounds
and its members are a breakdown of it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from plumber.analyzers.bounds import compute_bounds
from plumber.analyzers.diagnose import diagnose, scene
from plumber.records.kinds import SAMPLE_CACHE
from plumber.tuner.derive import derive_plan
from tests.unit.synthetic_profiles import loader_profile

RESIZE = ("Resize", 0.001, 0.001, False)
BLUR = ("GaussianBlur", 0.020, 0.020, False)
FLIP = ("RandomHorizontalFlip", 0.0002, 0.0002, True)


def expensive_transform(**kwargs):
    """2 workers on 2 cores; the blur takes most of every sample's time."""
    return loader_profile((0.002, 0.0018), (RESIZE, BLUR, FLIP), num_workers=2,
                          wait_s=9.0, step_s=1.0, **kwargs)


def slow_fetch(**kwargs):
    """Each sample waits 20 ms on storage and computes 0.5 ms."""
    kwargs.setdefault("num_workers", 2)
    return loader_profile((0.020, 0.0005), (RESIZE,), wait_s=8.4, step_s=1.0, **kwargs)


def test_the_pool_bounds_the_pipeline_and_its_members_give_no_bound_of_their_own():
    diagnosis = diagnose(expensive_transform())
    names = {b.name for b in diagnosis.bounds}
    assert "workers" in names
    assert not names & {"fetch", "transform_0", "transform_1", "transform_2", "collate"}
    assert diagnosis.bottleneck_stage == "workers"
    assert diagnosis.bottleneck_kind == "cpu"


def test_the_cpu_bound_counts_the_members_cpu_once():
    profile = expensive_transform()
    model = scene(profile, profile.pipelines[0])
    cpu = next(b for b in compute_bounds(model.analyses, model.limits) if b.kind == "cpu"
               and b.name == "CPU")
    per_batch = 8 * (0.0018 + 0.001 + 0.020 + 0.0002) + 0.01 * 0.002 * 8
    assert cpu.rate == pytest.approx(2 / per_batch, rel=1e-6)


def test_the_summary_names_the_member_that_takes_most_of_the_workers_time():
    diagnosis = diagnose(expensive_transform())
    assert "transform_1 (GaussianBlur)" in diagnosis.summary
    assert "mostly computing" in diagnosis.summary


def test_members_keep_their_own_analysis_for_the_stage_table():
    diagnosis = diagnose(expensive_transform())
    blur = next(a for a in diagnosis.stages if a.stage_id == "transform_1")
    assert blur.pool == "workers"
    assert blur.visit_ratio == 8
    assert blur.cpu_demand_s == pytest.approx(8 * 0.020)


def test_a_waiting_fetch_makes_the_pool_latency_bound_and_asks_for_workers_beyond_the_cores():
    diagnosis = diagnose(slow_fetch())
    assert diagnosis.bottleneck_stage == "workers"
    assert diagnosis.bottleneck_kind == "latency"
    assert "fetch (__getitem__)" in diagnosis.summary and "mostly waiting" in diagnosis.summary
    workers = [w for w in diagnosis.what_ifs if w.knob == "parallelism"]
    assert any(int(w.value) > 2 for w in workers)
    assert all(w.change.startswith("num_workers 2 -> ") for w in workers)


def test_the_plan_sizes_workers_by_littles_law_for_a_waiting_fetch():
    profile = slow_fetch()
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    (pipeline,) = plan.pipelines
    setting = next(s for s in pipeline.settings if s.stage_id == "workers")
    # Target 100 batches/s (the step) x 0.1696 s per batch (8 x 21 ms + collation)
    # x 1.25 headroom = 21.2.
    assert setting.parallelism == 22
    assert "Little's law" in setting.reason
    assert setting.threads is None and setting.prefetch is None


def test_worker_count_is_capped_by_the_memory_the_workers_take():
    profile = slow_fetch(worker_rss=1_000_000_000, memory=8_000_000_000)
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "workers")
    assert setting.parallelism == 4
    assert "capped at 4 workers" in setting.reason


def test_no_workers_is_answered_with_workers_and_recommended_as_num_workers():
    profile = loader_profile((0.002, 0.002), (BLUR,), num_workers=0, wait_s=9.0, step_s=1.0)
    diagnosis = diagnose(profile)
    change = next(w for w in diagnosis.what_ifs if w.knob == "parallelism")
    assert change.change.startswith("num_workers 0 -> 2")
    advice = next(r for r in diagnosis.recommendations if r.stage_id == "workers")
    assert (advice.old, advice.new) == ("num_workers=0", "num_workers=2")


def test_a_sample_cache_goes_after_the_last_deterministic_transform_never_after_a_random_one():
    diagnosis = diagnose(expensive_transform())
    caches = {w.stage_id: w for w in diagnosis.what_ifs if w.knob == "cache"}
    assert caches["transform_1"].feasible
    assert caches["transform_1"].value == "memory"
    assert "transform_2" not in caches or not caches["transform_2"].feasible
    assert "collate" not in caches and "workers" not in caches
    advice = next(r for r in diagnosis.recommendations if r.stage_id == "transform_1")
    assert "CachedDataset(dataset, upto=1" in advice.new


def test_the_cache_prediction_removes_the_cached_members_from_the_pools_demand():
    diagnosis = diagnose(expensive_transform())
    cache = next(w for w in diagnosis.what_ifs if w.knob == "cache" and w.feasible)
    # What stays per batch: the flip and collation, so the step (100/s) binds once full;
    # over the run's two passes the first still runs at the model's rate as it ran.
    assert cache.steady_rate == pytest.approx(100.0)
    first = scene(expensive_transform(), expensive_transform().pipelines[0]).predicted_rate
    assert cache.predicted_rate == pytest.approx(2 / (1 / first + 1 / 100.0))


def test_a_run_that_read_its_data_once_gets_no_cache():
    diagnosis = diagnose(expensive_transform(cardinality=800))
    caches = [w for w in diagnosis.what_ifs if w.knob == "cache"]
    assert caches and not any(w.feasible for w in caches)
    assert "read its data 1.0 time(s)" in caches[0].reason


def test_a_cache_too_big_for_memory_goes_to_disk_when_the_disk_has_room():
    profile = expensive_transform(memory=1_000_000)
    diagnosis = diagnose(profile)
    cache = next(w for w in diagnosis.what_ifs if w.knob == "cache" and w.feasible)
    assert cache.value == "disk"
    assert "in a file under /cache" in cache.reason
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.cache)
    assert setting.cache == "/cache/train-loader-0-transform_1"


def test_a_cache_that_fits_neither_memory_nor_disk_is_never_proposed():
    diagnosis = diagnose(expensive_transform(memory=1_000_000, cache_dir_free=1_000_000))
    caches = [w for w in diagnosis.what_ifs if w.knob == "cache"]
    assert caches and not any(w.feasible for w in caches)
    assert "free for file caches" in caches[0].reason


def test_an_iterable_dataset_gets_no_sample_cache():
    diagnosis = diagnose(expensive_transform(map_style=False, cardinality=None))
    caches = [w for w in diagnosis.what_ifs if w.knob == "cache"]
    assert not any(w.feasible for w in caches)
    assert any("iterable dataset" in w.reason for w in caches)


def test_a_loader_whose_samples_are_cached_already_gets_no_second_cache():
    # profile --plan with a plan's CachedDataset in force: the fetch then reads the cache,
    # and a cache after it was proposed as if it spared the transforms the cache replays.
    profile = expensive_transform()
    (pipeline,) = profile.pipelines
    stages = tuple(dataclasses.replace(s, knobs={**s.knobs, SAMPLE_CACHE: 0})
                   if s.kind == "workers" else s for s in pipeline.stages)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=stages),))
    diagnosis = diagnose(profile)
    caches = [w for w in diagnosis.what_ifs if w.knob == "cache"]
    assert caches and not any(w.feasible for w in caches)
    assert ("the loader's samples are cached already (after transform_0 by plumber's "
            "CachedDataset)") in caches[0].reason
    assert not any(r.title.startswith("Cache") for r in diagnosis.recommendations)
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    assert not any(s.cache for p in plan.pipelines for s in p.settings)


def test_a_loader_iterated_several_times_gets_persistent_workers():
    profile = slow_fetch()
    pipeline = profile.pipelines[0]
    pool = pipeline.stage("workers")
    pool = dataclasses.replace(pool, knobs={**pool.knobs, "iterations": 3})
    pipeline = dataclasses.replace(
        pipeline, stages=tuple(pool if s.id == "workers" else s for s in pipeline.stages)
    )
    profile = dataclasses.replace(profile, pipelines=(pipeline,))
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "workers")
    assert setting.persistent_workers is True
    assert setting.pin_memory is None
    assert "iterated 3 times" in setting.reason


def test_a_machine_busy_with_other_processes_does_not_turn_waiting_into_computing():
    from plumber.records.profile import TimeSeries

    busy_elsewhere = TimeSeries(t=(0, 1, 2), cpu_percent=(97, 98, 97),
                                process_cpu_percent=(30, 30, 30))
    diagnosis = diagnose(dataclasses.replace(slow_fetch(), resources=busy_elsewhere))
    assert diagnosis.bottleneck_kind == "latency"
    assert any("Other processes kept the machine busy" in w for w in diagnosis.warnings)


def test_a_loader_gets_no_tf_style_prefetch_advice():
    diagnosis = diagnose(loader_profile((0.002, 0.002), (BLUR,), num_workers=0,
                                       wait_s=9.0, step_s=1.0))
    assert not [w for w in diagnosis.what_ifs if w.knob == "prefetch"]


def test_no_more_workers_than_an_epoch_has_batches():
    profile = slow_fetch(cardinality=64)
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "workers")
    assert setting.parallelism == 8
    assert "an epoch has 8 batches" in setting.reason


def test_an_iterable_dataset_keeps_its_worker_count():
    # More workers would each run the whole stream unless the dataset splits it.
    profile = slow_fetch(map_style=False, cardinality=None)
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    settings = [s for p in plan.pipelines for s in p.settings if s.stage_id == "workers"]
    assert all(s.parallelism is None for s in settings)


def test_a_bursty_consumer_gets_a_deeper_prefetch_factor():
    profile = slow_fetch()
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, wait_sd_s=0.02, step_sd_s=0.02)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),))
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "workers")
    assert setting.prefetch is not None and setting.prefetch > 2
    assert f"prefetch_factor {setting.prefetch}" in setting.reason


def _without_workers(step_cpu_s=None, wait_s=2.4):
    """No workers: 3 ms of fetch and resize per sample, 8 per batch, made between 10 ms steps.

    ``step_cpu_s`` is the training step's own CPU per step; the process's
    CPU over its 100 steady steps then holds the pool's and the step's.
    ``wait_s`` is the loop's time waiting for the 100 batches.
    """
    profile = loader_profile((0.002, 0.002), (RESIZE,), num_workers=0, wait_s=wait_s,
                             step_s=1.0)
    if step_cpu_s is None:
        return profile
    pipeline = profile.pipelines[0]
    pool_cpu = pipeline.stage("workers").stats.cpu_time_s
    consumer = dataclasses.replace(pipeline.consumer, cpu_s=pool_cpu + 100 * step_cpu_s,
                                   steady_steps=100, steady_s=wait_s + 1.0)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def test_batches_made_in_the_loops_thread_take_turns_with_the_step():
    profile = _without_workers()
    pool = next(a for a in scene(profile, profile.pipelines[0]).analyses
                if a.stage_id == "workers")
    # each batch costs its own wall time and then the 10 ms step, one after the other
    assert pool.loop_step_s == pytest.approx(0.01)
    assert pool.max_rate == pytest.approx(1 / (pool.wall_demand_s + 0.01))
    diagnosis = diagnose(profile)
    bound = next(b for b in diagnosis.bounds if b.name == "workers")
    assert "training loop's own thread" in bound.detail
    assert "taking turns with the step" in diagnosis.summary
    # one worker per core makes batches beside the step: parallelism / wall, no step added
    change = next(w for w in diagnosis.what_ifs if w.knob == "parallelism")
    assert change.predicted_rate > 1.5 * pool.max_rate


def test_no_more_workers_beside_a_step_that_fills_the_cores():
    # GIVEN a 10 ms step that uses 20 ms of CPU: both of the 2 cores while it runs
    profile = _without_workers(step_cpu_s=0.020)
    diagnosis = diagnose(profile)
    # THEN more workers are listed as not proposed, with why, and nothing is planned
    change = next(w for w in diagnosis.what_ifs if w.knob == "parallelism")
    assert not change.feasible
    assert change.reason.startswith("Not proposed: the training step keeps 2.0 of the 2")
    assert not any(r.stage_id == "workers" for r in diagnosis.recommendations)
    assert "proposes no more parallelism" in diagnosis.summary
    assert math.isnan(diagnosis.rate_if_fixed)
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    assert not any(s.parallelism for p in plan.pipelines for s in p.settings)


def test_workers_are_still_proposed_beside_a_step_that_leaves_cores_free():
    # a 10 ms step using 5 ms of CPU leaves one and a half cores to the workers
    diagnosis = diagnose(_without_workers(step_cpu_s=0.005))
    change = next(w for w in diagnosis.what_ifs if w.knob == "parallelism")
    assert change.feasible
    assert any(r.stage_id == "workers" for r in diagnosis.recommendations)


def test_a_step_too_small_a_share_of_the_loop_does_not_say_how_many_cores_it_keeps_busy():
    # GIVEN the same CPU beyond the stages, but a loop that waited 99% of its time: that
    # CPU is mostly the process's own (hooks, sampler), not the 10 ms step's
    diagnosis = diagnose(_without_workers(step_cpu_s=0.020, wait_s=99.0))
    # THEN more workers are still proposed
    change = next(w for w in diagnosis.what_ifs if w.knob == "parallelism")
    assert change.feasible
