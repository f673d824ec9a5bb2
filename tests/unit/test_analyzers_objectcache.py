"""A cache of fetched objects: when the model proposes it, what it predicts, and the plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from plumber.analyzers.allocate import whole_rounds
from plumber.analyzers.diagnose import diagnose
from plumber.analyzers.edits import setting_edits
from plumber.records.profile import NetworkRequests
from plumber.tuner.derive import derive_plan
from tests.unit.synthetic_profiles import loader_profile, make_profile, stage

OBJECT = 12_000


def shuffled_fetch(reads_per_object: int = 3, memory: int = 8_000_000_000,
                   cache_free: int | None = None):
    """96 keys, shuffled, fetched and randomly flipped in one map (50 ms wait, 2 ms CPU each),
    batched by 16, repeated without end; the run read every object ``reads_per_object`` times.
    """
    n = 96 * reads_per_object
    profile = make_profile(
        stage("source-0", "source", n, 0.01),
        stage("shuffle-0", "shuffle", n, 0.01),
        stage("map-0", "map", n, n * 0.052, n * 0.002, parallelism=1, line=10,
              knobs={"parallelism": 1, "random": True, "stateful": True},
              bytes_per_element=OBJECT),
        stage("batch-0", "batch", n // 16, 0.01, line=11),
        stage("repeat-0", "repeat", n // 16, 0.01, line=11, knobs={"count": None}),
        wait_s=n * 0.052, step_s=0.01, steps=n // 16, memory=memory, infinite=True,
    )
    network = NetworkRequests(
        requests=n, bytes_received=n * OBJECT, busy_s=n * 0.05, latency_mean_s=0.05,
        latency_p50_s=0.05, latency_p90_s=0.055, in_flight_max=1, hosts=("127.0.0.1:9000",),
        statuses={"200": n}, object_reads=n, objects_read=96, object_bytes=96 * OBJECT,
    )
    machine = dataclasses.replace(profile.machine, cache_dir="/cache",
                                  cache_dir_free_bytes=cache_free)
    return dataclasses.replace(profile, network=network, machine=machine)


def object_cache(diagnosis):
    return next(w for w in diagnosis.what_ifs if w.knob == "object_cache")


def test_objects_read_three_times_are_cached_where_a_stage_cache_is_ruled_out():
    diagnosis = diagnose(shuffled_fetch())
    # A cache after the map would freeze the shuffle and the random flip.
    assert not any(w.feasible for w in diagnosis.what_ifs if w.knob == "cache")
    what_if = object_cache(diagnosis)
    assert what_if.feasible and what_if.value == "memory" and what_if.stage_id == "map-0"
    # Once every object is held the map no longer waits: one call at 2 ms per element
    # gives 500 elements (31.25 batches) per second; averaged with the first pass.
    assert what_if.steady_rate == pytest.approx(500 / 16)
    assert diagnosis.predicted_rate < what_if.predicted_rate < what_if.steady_rate
    assert "read each of its 96 objects 3.0 times" in what_if.reason
    assert "do not change during the run" in what_if.reason
    assert any("Cache the objects map-0 fetches in memory" == r.title
               for r in diagnosis.recommendations)


def test_objects_read_once_are_not_cached():
    what_if = object_cache(diagnose(shuffled_fetch(reads_per_object=1)))
    assert not what_if.feasible
    assert "read each object 1.0 time(s)" in what_if.reason


def test_objects_beyond_the_memory_budget_go_to_disk_and_beyond_both_are_refused():
    # 1.15 MB of objects; half of 1 MB of memory is too little, half of 10 MB of disk is not.
    on_disk = object_cache(diagnose(shuffled_fetch(memory=1_000_000, cache_free=10_000_000)))
    assert on_disk.feasible and on_disk.value == "disk"
    refused = object_cache(diagnose(shuffled_fetch(memory=1_000_000, cache_free=1_000_000)))
    assert not refused.feasible and "fit neither" in refused.reason


def test_the_plan_fetches_concurrently_and_keeps_the_objects():
    profile = shuffled_fetch()
    diagnosis = diagnose(profile)
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    (pipeline,) = plan.pipelines
    fetch = next(s for s in pipeline.settings if s.stage_id == "map-0")
    assert fetch.object_cache == "memory"
    assert fetch.parallelism > 2  # Little's law, beyond the cores, for the first pass
    assert "Little's law" in fetch.reason and "objects" in fetch.reason
    # With that many in flight the CPU bounds both passes (2 cores / 34.2 ms of CPU per
    # batch); the model keeps the requests' own CPU time, so the cache adds no rate to it.
    assert pipeline.predicted_rate == pytest.approx(fetch.predicted_rate)
    assert pipeline.predicted_rate == pytest.approx(2 / (16 * 0.002 + 0.00219), rel=0.01)
    edits = [str(e) for e in setting_edits(fetch, {"parallelism": 1})]
    assert 'plumber.objectcache.cache_object_reads(boto3.client("s3", ...), location="memory")' \
        in edits[-1]


def test_a_plan_with_objects_on_disk_names_a_folder_under_the_cache_dir():
    profile = shuffled_fetch(memory=1_000_000, cache_free=10_000_000)
    plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
    fetch = next(s for s in plan.pipelines[0].settings if s.stage_id == "map-0")
    assert fetch.object_cache == "/cache/train-pipeline-0-objects"


def test_a_dataloader_gets_its_samples_cached_not_its_objects():
    profile = loader_profile((0.020, 0.0005), (("Resize", 0.001, 0.001, False),),
                             num_workers=2, wait_s=8.4, step_s=1.0)
    network = NetworkRequests(
        requests=1600, bytes_received=1600 * OBJECT, busy_s=9.0, latency_mean_s=0.02,
        latency_p50_s=0.02, latency_p90_s=0.025, in_flight_max=2,
        object_reads=1600, objects_read=800, object_bytes=800 * OBJECT,
    )
    diagnosis = diagnose(dataclasses.replace(profile, network=network))
    assert not any(w.knob == "object_cache" for w in diagnosis.what_ifs)


def test_without_object_reads_there_is_nothing_to_cache():
    profile = shuffled_fetch()
    network = dataclasses.replace(profile.network, object_reads=0, objects_read=0)
    diagnosis = diagnose(dataclasses.replace(profile, network=network))
    assert not any(w.knob == "object_cache" for w in diagnosis.what_ifs)


def test_a_fetch_that_ends_the_pipeline_keeps_its_objects_beside_the_prefetch():
    # The last stage's setting also gets the prefetch and thread pool: the cache must stay.
    full = shuffled_fetch()
    pipeline = full.pipelines[0]
    stages = pipeline.stages[:3]
    short = dataclasses.replace(full, pipelines=(dataclasses.replace(
        pipeline, stages=stages, root="map-0", infinite=False),))
    plan = derive_plan(short, (diagnose(short),), Path("train.py"))
    (fetch,) = plan.pipelines[0].settings
    assert fetch.object_cache == "memory" and fetch.prefetch is not None
    assert fetch.threads is not None and fetch.parallelism > 2


def test_a_stage_waiting_on_something_else_than_its_few_requests_gets_no_object_cache():
    # The map waits 50 ms per element, but the run made 3 reads of one small manifest.
    profile = shuffled_fetch()
    network = dataclasses.replace(profile.network, requests=3, object_reads=3, objects_read=1,
                                  object_bytes=500, bytes_received=1500)
    diagnosis = diagnose(dataclasses.replace(profile, network=network))
    assert not any(w.knob == "object_cache" for w in diagnosis.what_ifs)


@pytest.mark.parametrize(("little", "objects", "expected"), [
    (36, 96, 48),   # 3 round trips where Little's law counted 2.7: 48 take 2
    (11, 96, 12),   # 8.7 -> 8 whole rounds of 12
    (48, 96, 48),   # already whole
    (120, 96, 96),  # never more than a pass has requests
    (36, None, 36),  # pass size unknown: Little's law as is
])
def test_requests_in_flight_fetch_a_pass_in_whole_round_trips(little, objects, expected):
    assert whole_rounds(little, objects) == expected


def test_the_plan_rounds_requests_in_flight_to_whole_rounds_only_for_a_run_read_to_its_end():
    def fetch_parallelism(profile):
        plan = derive_plan(profile, (diagnose(profile),), Path("train.py"))
        return next(s for s in plan.pipelines[0].settings if s.stage_id == "map-0").parallelism

    full = shuffled_fetch()
    # Little's law asks 61 of 96: two rounds, so all 96, capped at 64 in flight.
    assert fetch_parallelism(full) == 64
    stopped = dataclasses.replace(full, run=dataclasses.replace(full.run, bounded_by="steps"))
    assert fetch_parallelism(stopped) == 61
