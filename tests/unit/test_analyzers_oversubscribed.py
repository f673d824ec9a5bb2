"""Waiting for a core vs waiting for I/O: the schedstat split of a stage's wall time,
and worker pools that wait mostly on the run queue (oversubscribed) vs on latency."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from plumber.analyzers.diagnose import diagnose
from plumber.analyzers.stages import core_wait_per_cpu, split_wall
from plumber.records.profile import Profile, ThreadCpu
from plumber.tuner.derive import derive_plan
from tests.unit.synthetic_profiles import loader_profile, make_profile, stage

#: A CPU-heavy transform: 5 ms of CPU per sample, 40 ms of wall with 16 workers on 2 cores.
CROWDED_TRANSFORM = ("Normalize", 0.040, 0.005, False)


def with_pool_runqueue(profile: Profile, share_of_waiting: float) -> Profile:
    """``profile`` with its pool's run-queue wait set to a share of its time off the CPU."""
    (pipeline,) = profile.pipelines
    stages = []
    for s in pipeline.stages:
        if s.kind == "workers":
            waiting = s.stats.wall_time_s - s.stats.cpu_time_s
            stats = dataclasses.replace(s.stats, runqueue_time_s=share_of_waiting * waiting)
            s = dataclasses.replace(s, stats=stats)
        stages.append(s)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=tuple(stages)),)
    )


def crowded_pool(share_of_waiting: float = 0.95) -> Profile:
    """16 workers on 2 cores, each sample 5 ms of CPU stretched to 40 ms by the run queue."""
    profile = loader_profile((0.0005, 0.0005), (CROWDED_TRANSFORM,), num_workers=16,
                             wait_s=9.0, step_s=1.0, cardinality=8000)
    return with_pool_runqueue(profile, share_of_waiting)


def waiting_pool() -> Profile:
    """4 workers each waiting 20 ms per sample on storage, never on the run queue."""
    profile = loader_profile((0.020, 0.0005), (("Resize", 0.001, 0.001, False),),
                             num_workers=4, wait_s=8.4, step_s=1.0)
    return with_pool_runqueue(profile, 0.0)


def pool_analysis(profile: Profile):
    return next(a for a in diagnose(profile).stages if a.stage_id == "workers")


def test_wall_time_splits_into_computing_core_wait_and_io_wait():
    split = split_wall(wall_s=10.0, cpu_s=2.0, runqueue_s=5.0)
    assert (split.computing, split.core, split.other) == pytest.approx((0.2, 0.5, 0.3))


def test_a_run_queue_wait_beyond_the_wall_left_after_cpu_is_clamped():
    # CPU and run queue come from other clocks than the wall time; together they may overshoot.
    split = split_wall(wall_s=10.0, cpu_s=4.0, runqueue_s=7.0)
    assert (split.computing, split.core, split.other) == pytest.approx((0.4, 0.6, 0.0))


def test_without_a_run_queue_measurement_all_time_off_the_cpu_is_other_waiting():
    split = split_wall(wall_s=4.0, cpu_s=1.0, runqueue_s=None)
    assert split.core is None
    assert (split.computing, split.other) == pytest.approx((0.25, 0.75))


def test_no_split_without_wall_time():
    assert split_wall(0.0, 0.0, 0.0) is None


def test_a_pool_waiting_mostly_on_the_run_queue_is_cpu_bound_and_oversubscribed():
    analysis = pool_analysis(crowded_pool())
    assert analysis.resource == "cpu"
    assert analysis.core_wait_fraction == pytest.approx(0.95 * analysis.wait_fraction)
    assert "oversubscribed" in analysis.note and "16 workers" in analysis.note
    assert "I/O or latency), so needs more" not in analysis.note


def test_the_verdict_of_an_oversubscribed_pool_is_cpu_and_says_more_workers_cannot_help():
    diagnosis = diagnose(crowded_pool())
    assert diagnosis.bottleneck_kind == "cpu"
    assert "CPU-bound" in diagnosis.summary
    assert "workers-0" not in diagnosis.summary
    assert "is oversubscribed: its 16 workers waited" in diagnosis.summary
    assert "for one of the 2 usable cores, not for I/O" in diagnosis.summary
    assert "mostly waiting for a core" in diagnosis.summary
    assert "so more workers cannot help; 3 would do the same work" in diagnosis.summary


def test_the_only_parallelism_what_if_of_an_oversubscribed_pool_is_fewer_workers():
    diagnosis = diagnose(crowded_pool(share_of_waiting=1.0))
    (fewer,) = [w for w in diagnosis.what_ifs if w.knob == "parallelism"]
    assert fewer.change == "num_workers 16 -> 2 at workers (workers at train.py:40)"
    assert fewer.reason.startswith("Oversubscribed: 16 workers on 2 usable cores")
    # the model counts CPU, not switching: fewer workers predict the rate as run, no loss
    assert fewer.predicted_rate == pytest.approx(diagnosis.predicted_rate, rel=0.05)


def test_the_plan_lowers_the_workers_of_a_pool_waiting_only_for_cores_to_the_cores():
    profile = crowded_pool(share_of_waiting=1.0)
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    (pipeline,) = plan.pipelines
    setting = next(s for s in pipeline.settings if s.stage_id == "workers")
    assert setting.parallelism == 2
    assert setting.reason.startswith("oversubscribed: 16 workers on 2 usable cores waited")
    # Without the run-queue wait, 2 workers keep the 2 cores busy: the CPU bound, not 8x less.
    assert pipeline.predicted_rate == pytest.approx(diagnose(profile).predicted_rate, rel=0.05)


def test_the_same_pool_without_run_queue_time_waits_on_latency_and_gets_more_workers():
    # GIVEN the crowded pool's times, but none of its waiting on the run queue
    diagnosis = diagnose(crowded_pool(share_of_waiting=0.0))
    analysis = next(a for a in diagnosis.stages if a.stage_id == "workers")
    # THEN it is not called oversubscribed: its waiting is I/O or latency
    assert analysis.resource == "latency"
    assert analysis.core_wait_fraction == 0.0
    assert "oversubscribed" not in diagnosis.summary


def test_a_pool_waiting_on_latency_with_no_run_queue_time_still_gets_more_workers():
    profile = waiting_pool()
    analysis = pool_analysis(profile)
    assert analysis.resource == "latency"
    assert "(0% for a core)" in analysis.note
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    (pipeline,) = plan.pipelines
    setting = next(s for s in pipeline.settings if s.stage_id == "workers")
    assert setting.parallelism > 4


def test_a_pool_with_some_real_waiting_keeps_workers_for_it_when_lowered():
    # GIVEN 16 workers whose waiting is 60% run queue, 40% I/O
    profile = crowded_pool(share_of_waiting=0.6)
    assert pool_analysis(profile).resource == "cpu"
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "workers")
    # THEN fewer than 16, but more than the 2 cores: the I/O wait holds no core
    assert 2 < setting.parallelism < 16


def test_the_pools_members_share_its_run_queue_wait_and_are_not_called_latency_bound():
    diagnosis = diagnose(crowded_pool(share_of_waiting=0.9))
    transform = next(a for a in diagnosis.stages if a.stage_id == "transform_0")
    assert transform.pool == "workers"
    assert transform.resource == "cpu"
    assert transform.core_wait_fraction == pytest.approx(0.9 * transform.wait_fraction)
    assert "oversubscribed, 16 workers on 2 usable cores" in transform.note


def test_waiting_for_a_core_with_no_more_workers_than_cores_is_crowding_not_oversubscription():
    # GIVEN 2 workers on 2 cores that waited mostly for a core: other processes held the cores
    profile = with_pool_runqueue(
        loader_profile((0.0005, 0.0005), (CROWDED_TRANSFORM,), num_workers=2,
                       wait_s=9.0, step_s=1.0, cardinality=8000),
        share_of_waiting=1.0,
    )
    diagnosis = diagnose(profile)
    analysis = next(a for a in diagnosis.stages if a.stage_id == "workers")
    # THEN it is CPU-bound, blamed on the others, and fewer workers are not proposed
    assert analysis.resource == "cpu"
    assert "other threads or processes kept the cores busy" in analysis.note
    assert "oversubscribed" not in diagnosis.summary
    assert not [w for w in diagnosis.what_ifs if w.knob == "parallelism" and int(w.value) < 2]


def tf_profile(map_wall: float, map_cpu: float, parallelism: int, threads=()) -> Profile:
    """A tf.data source -> map(parallelism) -> batch, with the main process's thread groups."""
    profile = make_profile(
        stage("source-0", "source", 800, 0.05, line=3),
        stage("map-0", "map", 800, map_wall, map_cpu, parallelism=parallelism,
              knobs={"parallelism": parallelism}, line=4),
        stage("batch-0", "batch", 100, 0.02, line=5),
        wait_s=9.0, step_s=1.0,
    )
    return dataclasses.replace(profile, threads=tuple(threads))


#: tf.data's pool (threads that kept the process's name): 3 s queued per CPU second.
CROWDED_POOL_THREADS = (
    ThreadCpu("plumber", 8, 10.0, "inherited", 30.0),
    ThreadCpu("plumber", 1, 2.0, "main", 0.1),
    ThreadCpu("plumber-sampler", 1, 0.1, "profiler", 5.0),
)


def test_the_frameworks_threads_give_their_run_queue_seconds_per_cpu_second():
    assert core_wait_per_cpu(CROWDED_POOL_THREADS) == pytest.approx(3.0)
    # too little CPU to tell, a group not measured, no roles: no ratio
    assert core_wait_per_cpu((ThreadCpu("plumber", 2, 0.1, "inherited", 1.0),)) is None
    assert core_wait_per_cpu((ThreadCpu("plumber", 2, 5.0, "inherited", None),)) is None
    assert core_wait_per_cpu((ThreadCpu("plumber", 8, 10.0),)) is None


def test_a_tf_data_map_with_more_calls_than_cores_waiting_for_them_is_oversubscribed_estimated():
    # GIVEN a map at parallelism 8 on 2 cores whose wall is 4x its CPU, and tf.data's
    # threads waiting 3 s on the run queue per CPU second
    profile = tf_profile(map_wall=40.0, map_cpu=10.0, parallelism=8, threads=CROWDED_POOL_THREADS)
    diagnosis = diagnose(profile)
    analysis = next(a for a in diagnosis.stages if a.stage_id == "map-0")
    # THEN its waiting is put on the cores, as an estimate, and fewer calls are planned
    assert analysis.resource == "cpu"
    assert analysis.core_wait_fraction == pytest.approx(0.75)
    assert "estimated from the run queue of the framework's threads" in analysis.note
    assert "oversubscribed, 8 calls in flight on 2 usable cores" in analysis.note
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "map-0")
    assert setting.parallelism == 2


def test_a_waiting_tf_data_map_stays_latency_bound_when_its_threads_hardly_queue():
    # GIVEN a map that sleeps (wall 20x its CPU) and threads queueing 0.2 s per CPU second
    threads = (ThreadCpu("plumber", 8, 10.0, "inherited", 2.0),)
    profile = tf_profile(map_wall=40.0, map_cpu=2.0, parallelism=2, threads=threads)
    analysis = next(a for a in diagnose(profile).stages if a.stage_id == "map-0")
    assert analysis.resource == "latency"
    assert "(about 1% for a core)" in analysis.note


def test_without_thread_measurements_a_tf_data_stage_has_no_core_wait():
    profile = tf_profile(map_wall=40.0, map_cpu=10.0, parallelism=8)
    analysis = next(a for a in diagnose(profile).stages if a.stage_id == "map-0")
    assert analysis.core_wait_fraction is None
