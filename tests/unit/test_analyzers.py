"""The operational analysis on synthetic profiles: per-stage quantities and bottlenecks.

Every expected number follows from the synthetic inputs by the model of
DESIGN.md section 4 (worked out in the comments), so a change to the model
shows up here. Root elements are 100 in every profile.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from synthetic_profiles import make_profile, stage

from plumber.analyzers.diagnose import diagnose, diagnose_all
from plumber.records.profile import (
    Profile,
    SourceLocation,
    Stage,
    TimeSeries,
)


def expensive_map(cpu: float | None = -1.0) -> Profile:
    """A 10 s map held to one call on 2 cores; the step takes 1 ms.

    Per root element: map wall = CPU = 0.1 s -> the map allows 1 / 0.1 = 10/s;
    CPU demand 0.10065 s -> the cores allow 2 / 0.10065 = 19.87/s.
    """
    return make_profile(
        stage("source-0", "source", 1600, 0.01, cpu, op="Range"),
        stage("map-0", "map", 1600, 10.0, cpu, knobs={}, line=12),
        stage("batch-0", "batch", 100, 0.05, cpu, knobs={"batch_size": 16}),
        stage("prefetch-0", "prefetch", 100, 0.005, cpu, knobs={"buffer_size": 2}),
        wait_s=10.0,
        step_s=0.1,
    )


def slow_read(**kwargs: Any) -> Profile:
    """A sequential fetch that waits 95% of its 4 s, then a parallel decode and a batch of 8.

    Per root element: fetch wall 0.04 s -> 1 / 0.04 = 25/s; CPU demand
    (0.08 + 0.2 + 0.4 + 0.05 + 0.005) / 100 = 0.00735 s -> 2 / 0.00735 = 272.1/s.
    """
    return make_profile(
        stage("source-0", "source", 800, 0.08, op="Range"),
        stage("map-0", "map", 800, 4.0, 0.2, knobs={"stateful": True}, line=7),
        stage("map-1", "map", 800, 0.4, parallelism=2, knobs={"parallelism": -1}),
        stage("batch-0", "batch", 100, 0.05, knobs={"batch_size": 8}),
        stage("prefetch-0", "prefetch", 100, 0.005, knobs={"buffer_size": -1}),
        wait_s=3.9,
        step_s=0.1,
        **kwargs,
    )


def by_id(diagnosis: Any) -> dict[str, Any]:
    return {a.stage_id: a for a in diagnosis.stages}


def test_visit_ratios_count_elements_per_root_element_through_a_batch_of_8() -> None:
    stages = by_id(diagnose(slow_read()))
    assert [stages[s].visit_ratio for s in ("source-0", "map-0", "map-1", "batch-0")] == [
        8, 8, 8, 1
    ]
    assert stages["map-1"].cpu_demand_s == pytest.approx(0.004)
    assert stages["map-1"].max_rate == pytest.approx(2 / 0.004)
    assert stages["prefetch-0"].resource == "none"


def test_expensive_map_at_parallelism_1_on_2_cores_is_a_parallelism_bottleneck() -> None:
    diagnosis = diagnose(expensive_map())
    assert diagnosis.input_bound
    assert diagnosis.bottleneck_stage == "map-0"
    assert diagnosis.bottleneck_kind == "parallelism"
    assert diagnosis.predicted_rate == pytest.approx(10.0)
    assert diagnosis.observed_rate == pytest.approx(100 / 10.1)
    assert diagnosis.rate_if_fixed == pytest.approx(2 / 0.10065)
    assert diagnosis.rate_if_fixed / diagnosis.observed_rate == pytest.approx(2.0, rel=0.01)
    assert "map-0 (map at train.py:12)" in diagnosis.summary
    best = diagnosis.recommendations[0]
    assert (best.stage_id, best.old, best.new) == (
        "map-0", "num_parallel_calls=None", "num_parallel_calls=2"
    )
    assert best.source == SourceLocation("train.py", 12)
    assert best.predicted_rate == pytest.approx(2 / 0.10065)
    assert diagnosis.warnings == ()


def test_map_whose_cpu_exceeds_its_recorded_wall_with_a_core_idle_is_held_back_by_parallelism(
) -> None:
    # TF records a call's time only on the thread that runs it, so a map whose ops
    # run on other threads has CPU (18.5 s, one core through the 18.6 s run) above
    # its recorded wall (10 s). Taken as recorded, the map allows 1 / 0.1 = 10/s and
    # the cores 2 / 0.18565 = 10.8/s, too close to tell apart, and 10/s is far above
    # the 5.38/s observed. The run kept one core busy, so the one call in flight took
    # 0.185 s of wall per root element: the map allows 5.41/s, a second call 10.8/s.
    def profile(wait_s: float, process_cpu_percent: float) -> Profile:
        return make_profile(
            stage("source-0", "source", 1600, 0.01, op="Range"),
            stage("map-0", "map", 1600, 10.0, 18.5, knobs={}, line=12),
            stage("batch-0", "batch", 100, 0.05, knobs={"batch_size": 16}),
            stage("prefetch-0", "prefetch", 100, 0.005, knobs={"buffer_size": 2}),
            wait_s=wait_s,
            step_s=0.1,
            resources=TimeSeries(
                t=(0, 1, 2), cpu_percent=(50, 50, 50),
                process_cpu_percent=(process_cpu_percent,) * 3,
            ),
        )

    one_core = diagnose(profile(18.5, 100.0))
    assert (one_core.bottleneck_stage, one_core.bottleneck_kind) == ("map-0", "parallelism")
    assert one_core.predicted_rate == pytest.approx(1 / 0.18501, rel=1e-3)
    assert "ran on threads TF does not time" in by_id(one_core)["map-0"].note
    assert one_core.warnings == ()
    best = one_core.recommendations[0]
    assert (best.new, best.predicted_rate) == ("num_parallel_calls=2", pytest.approx(2 / 0.18565))
    # Calls that each kept two cores busy through a 10.1 s run took the 10 s recorded.
    two_cores = diagnose(profile(10.0, 183.0))
    assert by_id(two_cores)["map-0"].wall_demand_s == pytest.approx(0.1, rel=0.02)
    assert (two_cores.bottleneck_stage, two_cores.bottleneck_kind) == ("map-0", "cpu")


def test_demand_that_fills_every_core_is_a_cpu_bottleneck_at_the_heaviest_stage() -> None:
    # Per root element: 0.05 + 0.03 s of map CPU on 2 cores -> 2 / 0.08011 = 24.97/s,
    # while the maps alone allow 2 / 0.05 = 40/s and 2 / 0.03 = 66.7/s.
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 5.0, parallelism=2),
        stage("map-1", "map", 100, 3.0, parallelism=2),
        stage("prefetch-0", "prefetch", 100, 0.001),
        wait_s=4.9,
        step_s=0.1,
    )
    diagnosis = diagnose(profile)
    assert diagnosis.bottleneck_kind == "cpu"
    assert diagnosis.bottleneck.name == "CPU"
    assert diagnosis.predicted_rate == pytest.approx(2 / 0.08011)
    assert diagnosis.bottleneck_stage == "map-0"
    assert diagnosis.rate_if_fixed == pytest.approx(40.0)
    assert "CPU-bound" in diagnosis.summary and "map-0" in diagnosis.summary
    assert not [w for w in diagnosis.what_ifs if w.knob == "parallelism"]


def test_waiting_for_a_core_on_a_busy_machine_is_cpu_not_latency() -> None:
    def profile(resources: TimeSeries) -> Profile:
        return make_profile(
            stage("source-0", "source", 100, 0.01),
            stage("map-0", "map", 100, 12.0, 5.0, parallelism=2),
            stage("map-1", "map", 100, 6.0, 3.0, parallelism=2),
            wait_s=4.9,
            step_s=0.1,
            resources=resources,
        )

    busy = diagnose(profile(TimeSeries(t=(0, 1, 2), cpu_percent=(95, 96, 94))))
    assert by_id(busy)["map-0"].resource == "cpu"
    assert busy.bottleneck_kind == "cpu"
    idle = diagnose(profile(TimeSeries(t=(0, 1, 2), cpu_percent=(30, 30, 30))))
    assert by_id(idle)["map-0"].resource == "latency"
    assert idle.bottleneck_kind == "latency"
    # The process alone used 1.9 of the 2 usable cores (machine-wide 30% of more cores).
    quota = TimeSeries(t=(0, 1, 2), cpu_percent=(30, 30, 30), process_cpu_percent=(190,) * 3)
    assert by_id(diagnose(profile(quota)))["map-0"].resource == "cpu"


def test_latency_bound_read_needs_more_calls_in_flight_than_there_are_cores() -> None:
    diagnosis = diagnose(slow_read())
    fetch = by_id(diagnosis)["map-0"]
    assert fetch.wait_fraction == pytest.approx(0.95)
    assert fetch.resource == "latency"
    assert diagnosis.bottleneck_stage == "map-0"
    assert diagnosis.bottleneck_kind == "latency"
    assert diagnosis.rate_if_fixed == pytest.approx(2 / 0.00735)
    # Little's law: 272.1/s x 0.04 s of waiting per root element = 10.9 -> 11 in flight.
    values = {w.value: w for w in diagnosis.what_ifs if w.knob == "parallelism"}
    assert set(values) == {"2", "11"}
    assert values["2"].predicted_rate == pytest.approx(50.0)
    assert values["11"].predicted_rate == pytest.approx(2 / 0.00735)
    assert "Little's law" in values["11"].reason
    best = diagnosis.recommendations[0]
    assert (best.old, best.new) == ("num_parallel_calls=None", "num_parallel_calls=11")


def test_waiting_read_while_the_disk_runs_near_its_bandwidth_is_disk_bound() -> None:
    # 90 MB/s read for the 4 s of iteration on a 100 MB/s disk: 3.6 MB per root
    # element -> the disk allows 100e6 / 3.6e6 = 27.8/s, so 2 reads in flight suffice;
    # beyond the disk, the cores allow 272.1/s.
    reads = TimeSeries(t=(0.0, 2.0, 4.0), disk_read_bps=(90e6, 90e6, 90e6))
    diagnosis = diagnose(slow_read(disk_bps=100e6, resources=reads))
    assert by_id(diagnosis)["map-0"].resource == "disk"
    assert diagnosis.bottleneck_kind == "disk"
    assert diagnosis.rate_if_fixed == pytest.approx(2 / 0.00735)
    assert "100 MB/s cold read bandwidth" in diagnosis.summary
    fetch = [w for w in diagnosis.what_ifs if w.knob == "parallelism"]
    assert [w.value for w in fetch] == ["2"]
    assert fetch[0].predicted_rate == pytest.approx(100e6 / 3.6e6)


def tfrecord_decode(resources: TimeSeries | None = None) -> Profile:
    """Records (100 MB per 100 root elements: 1 MB each) read by a TFRecord source whose
    reader TF runs nested in it, decoded on 2 calls; 50 MB/s disk, 50/s observed."""
    reader = stage("source-0>TFRecord", "source", 1000, 0.5, op="TFRecord",
                   bytes_per_element=100_000)
    return make_profile(
        stage("source-0", "source", 1000, 0.1, op="TFRecord", bytes_per_element=100_000),
        dataclasses.replace(reader, nested_in="source-0"),
        dataclasses.replace(stage("map-0", "map", 1000, 2.0, parallelism=2),
                            inputs=("source-0",)),
        stage("batch-0", "batch", 100, 0.01),
        wait_s=1.9,
        step_s=0.1,
        disk_bps=50e6,
        resources=resources,
    )


def test_disk_bound_counts_the_bytes_a_nested_file_reader_produced_once() -> None:
    # Without disk samples: 1 MB of records per root element, so a 50 MB/s disk
    # allows 50/s, below the decode's 2 / 0.02 = 100/s.
    diagnosis = diagnose(tfrecord_decode())
    disk = next(b for b in diagnosis.bounds if b.name == "disk")
    assert disk.rate == pytest.approx(50.0)
    assert "file-reading sources" in disk.detail
    assert diagnosis.bottleneck_kind == "disk"
    assert diagnosis.bottleneck_stage == "source-0>TFRecord"


def test_disk_reads_the_pipeline_could_not_have_made_are_not_counted_as_its_own() -> None:
    # 250 MB/s read for 4 s: 10 MB per root element, which at the observed 100 / 2 s
    # = 50/s would need 500 MB/s of a 50 MB/s disk (a program loading its libraries
    # reads so). The records' 1 MB per root element stands in: the disk allows 50/s.
    reads = TimeSeries(t=(0.0, 2.0, 4.0), disk_read_bps=(250e6, 250e6, 250e6))
    diagnosis = diagnose(tfrecord_decode(reads))
    disk = next(b for b in diagnosis.bounds if b.name == "disk")
    assert disk.rate == pytest.approx(50.0)
    assert "file-reading sources" in disk.detail
    (doubt,) = [w for w in diagnosis.warnings if "were not this pipeline's" in w]
    assert "read 10 MB from disk per element" in doubt


def test_disk_reads_the_pipeline_could_have_made_are_its_own() -> None:
    # 10 MB/s for 4 s: 0.4 MB per root element, 20 MB/s at the observed 50/s.
    reads = TimeSeries(t=(0.0, 2.0, 4.0), disk_read_bps=(10e6, 10e6, 10e6))
    diagnosis = diagnose(tfrecord_decode(reads))
    disk = next(b for b in diagnosis.bounds if b.name == "disk")
    assert disk.rate == pytest.approx(50e6 / 0.4e6)
    assert "observed disk reads" in disk.detail
    assert not [w for w in diagnosis.warnings if "were not this pipeline's" in w]


def test_consumer_slower_than_the_pipeline_is_not_input_bound() -> None:
    # The step allows 100 / 1.5 = 66.7/s; the map 2 / 0.003 = 667/s, the cores
    # 2 / 0.00352 = 568/s. The loop waited 0.05 / 1.55 = 3% of its time.
    profile = make_profile(
        stage("source-0", "source", 3200, 0.03),
        stage("map-0", "map", 3200, 0.3, parallelism=2, knobs={"parallelism": -1}),
        stage("batch-0", "batch", 100, 0.02),
        stage("prefetch-0", "prefetch", 100, 0.002),
        wait_s=0.05,
        step_s=1.5,
    )
    diagnosis = diagnose(profile)
    assert not diagnosis.input_bound
    assert diagnosis.bottleneck_kind == "consumer"
    assert diagnosis.predicted_rate == pytest.approx(100 / 1.5)
    assert diagnosis.stall_share == pytest.approx(0.05 / 1.55)
    assert diagnosis.rate_if_fixed == pytest.approx(2 / 0.00352)
    assert "the input pipeline is not the bottleneck" in diagnosis.summary.lower()
    assert "3%" in diagnosis.summary
    assert diagnosis.recommendations == ()


def test_unmeasured_stage_is_kept_flagged_and_left_out_of_the_bounds() -> None:
    profile = expensive_map()
    (pipeline,) = profile.pipelines
    ghost = Stage(id="map-1", kind="map", op="Map", inputs=("map-0",),
                  unmeasured_reason="removed by TF's graph rewrites before running")
    stages = list(pipeline.stages)
    stages.insert(2, ghost)
    stages[3] = dataclasses.replace(stages[3], inputs=("map-1",))
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=tuple(stages)),)
    )
    diagnosis = diagnose(profile)
    analysis = by_id(diagnosis)["map-1"]
    assert analysis.resource == "unmeasured"
    assert "removed by TF" in analysis.note
    assert all(b.stage_id != "map-1" for b in diagnosis.bounds)
    assert any("map-1 (removed by TF" in w for w in diagnosis.warnings)
    assert diagnosis.bottleneck_stage == "map-0"


def test_input_wait_with_no_measured_stage_is_an_unknown_input_bottleneck() -> None:
    profile = expensive_map()
    (pipeline,) = profile.pipelines
    blind = tuple(
        dataclasses.replace(s, stats=None, unmeasured_reason="no autotune model")
        for s in pipeline.stages
    )
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=blind),)
    )
    diagnosis = diagnose(profile)
    assert diagnosis.input_bound
    assert diagnosis.bottleneck_kind == "unknown"
    assert {a.resource for a in diagnosis.stages} == {"unmeasured"}
    assert diagnosis.rate_if_fixed == pytest.approx(1000.0)


def test_missing_cpu_times_use_wall_time_and_say_so() -> None:
    diagnosis = diagnose(expensive_map(cpu=None))
    assert diagnosis.bottleneck_kind == "parallelism"
    assert diagnosis.rate_if_fixed == pytest.approx(2 / 0.10065)
    assert by_id(diagnosis)["map-0"].wait_fraction is None
    assert any("CPU time was not measured for map-0" in w for w in diagnosis.warnings)


def test_a_loop_that_hardly_waited_overrules_a_model_that_blames_the_input() -> None:
    # The cores' bound (2 / 0.0601 = 33.3/s) is far below what was observed
    # (100 / 1.55 = 64.5/s): the model is wrong, the stall share is measured.
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 6.0, parallelism=2),
        wait_s=0.05,
        step_s=1.5,
    )
    diagnosis = diagnose(profile)
    assert not diagnosis.input_bound
    assert diagnosis.bottleneck_kind == "consumer"
    assert diagnosis.predicted_rate == pytest.approx(2 / 0.0601)
    assert any("waited only 3%" in w for w in diagnosis.warnings)
    assert any("apart" in w for w in diagnosis.warnings)


def test_every_pipeline_is_diagnosed_and_an_empty_profile_is_refused() -> None:
    profile = expensive_map()
    second = dataclasses.replace(profile.pipelines[0], id="pipeline-1")
    both = dataclasses.replace(profile, pipelines=(profile.pipelines[0], second))
    assert [d.pipeline_id for d in diagnose_all(both)] == ["pipeline-0", "pipeline-1"]
    assert diagnose(both, second).pipeline_id == "pipeline-1"
    with pytest.raises(ValueError):
        diagnose(dataclasses.replace(profile, pipelines=()))


def test_a_malformed_record_is_analysed_without_crashing() -> None:
    # NaN times (JSON null), a dangling input and a root that is not among the stages.
    profile = expensive_map()
    (pipeline,) = profile.pipelines
    broken = dataclasses.replace(
        pipeline.stages[0],
        inputs=("nowhere",),
        stats=dataclasses.replace(pipeline.stages[0].stats, wall_time_s=math.nan),
    )
    pipeline = dataclasses.replace(pipeline, root="gone", stages=(broken, *pipeline.stages[1:]))
    diagnosis = diagnose(dataclasses.replace(profile, pipelines=(pipeline,)))
    assert by_id(diagnosis)["source-0"].resource == "unmeasured"
    assert any("source-0 (no processing time recorded)" in w for w in diagnosis.warnings)
    assert diagnosis.bottleneck_stage == "map-0"
