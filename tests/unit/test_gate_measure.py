"""From synthetic profiles of repeated runs to per-pipeline medians and bottlenecks."""

from __future__ import annotations

import math

import pytest

from plumber.gate.measure import pipeline_key, throughputs
from plumber.records.profile import (
    ConsumerStats,
    Machine,
    Pipeline,
    Profile,
    RunInfo,
    SourceLocation,
    Stage,
    StageStats,
)

DIR = "/home/dev/project"


def stage(sid: str, kind: str, elements: int, seconds: float, line: int | None,
          inputs: tuple[str, ...] = (), parallelism: int = 1) -> Stage:
    """A measured stage that computes all the time it runs (CPU time = wall time)."""
    return Stage(
        id=sid, kind=kind, op=kind.capitalize(), inputs=inputs,
        source=SourceLocation(f"{DIR}/train.py", line) if line is not None else None,
        stats=StageStats(elements=elements, wall_time_s=seconds, cpu_time_s=seconds,
                         parallelism=parallelism),
    )


def pipeline(map_s: float, step_s: float, duration_s: float, pid: str = "pipeline-0",
             root_line: int | None = 30) -> Pipeline:
    """100 batches of 16 through a map held to one call on 2 cores, then a step each.

    A 10 s map (0.1 s per batch) with 0.1 s of steps is held back by its
    parallelism; a 0.1 s map with 10 s of steps leaves the consumer as the limit.
    """
    stages = (
        stage("source-0", "source", 1600, 0.01, 10),
        stage("map-0", "map", 1600, map_s, 12, ("source-0",)),
        stage("batch-0", "batch", 100, 0.05, 13, ("map-0",)),
        stage("prefetch-0", "prefetch", 100, 0.005, root_line, ("batch-0",)),
    )
    consumer = ConsumerStats("python_next", 100, wait_s=max(duration_s - step_s, 0.0),
                             step_s=step_s)
    return Pipeline(id=pid, root="prefetch-0", stages=stages, consumer=consumer,
                    duration_s=duration_s)


def profile(*pipelines: Pipeline) -> Profile:
    return Profile(
        run=RunInfo(command=("train.py",), started_at="2025-01-01T00:00:00+00:00",
                    duration_s=20.0, exit_status=0),
        machine=Machine(cores_logical=2, cores_usable=2.0, memory_total_bytes=8_000_000_000,
                        memory_available_bytes=6_000_000_000),
        pipelines=pipelines,
    )


def map_bound(duration_s: float = 10.0, **kwargs) -> Pipeline:
    return pipeline(map_s=10.0, step_s=0.1, duration_s=duration_s, **kwargs)


def consumer_bound(duration_s: float = 10.0, **kwargs) -> Pipeline:
    return pipeline(map_s=0.1, step_s=9.9, duration_s=duration_s, **kwargs)


def test_key_is_the_pipeline_id_and_the_root_location_by_file_name_only() -> None:
    assert pipeline_key(map_bound()) == "pipeline-0@train.py:30"


def test_root_built_by_tf_is_keyed_by_the_last_stage_the_user_wrote() -> None:
    assert pipeline_key(map_bound(root_line=None)) == "pipeline-0@train.py:13"


def test_rate_is_the_median_over_repeats_of_root_elements_per_second() -> None:
    (result,) = throughputs([profile(map_bound(d)) for d in (10.0, 12.5, 8.0)])
    assert result.rates == pytest.approx((10.0, 8.0, 12.5))
    assert result.rate == pytest.approx(10.0)
    assert (result.key, result.pipeline_id, result.root) == (
        "pipeline-0@train.py:30", "pipeline-0", "train.py:30"
    )


def test_bottleneck_is_the_one_the_analysis_names_with_its_source() -> None:
    (result,) = throughputs([profile(map_bound())])
    (bottleneck,) = result.bottlenecks
    assert (bottleneck.stage, bottleneck.kind, bottleneck.input_bound, bottleneck.source) == (
        "map-0", "parallelism", True, "train.py:12"
    )


def test_majority_of_repeats_decides_the_bottleneck() -> None:
    runs = [profile(consumer_bound()), profile(map_bound()), profile(map_bound())]
    (result,) = throughputs(runs)
    assert [b.kind for b in result.bottlenecks] == ["parallelism"]


def test_tied_repeats_keep_both_bottlenecks() -> None:
    (result,) = throughputs([profile(consumer_bound()), profile(map_bound())])
    identities = [b.identity for b in result.bottlenecks]
    assert identities == [(None, "consumer"), ("map-0", "parallelism")]


def test_pipeline_seen_in_only_some_repeats_counts_nan_for_the_others() -> None:
    second = map_bound(pid="pipeline-1", root_line=50)
    runs = [profile(map_bound(), second), profile(map_bound(8.0))]
    first, other = throughputs(runs)
    assert first.rates == pytest.approx((10.0, 12.5))
    assert other.key == "pipeline-1@train.py:50"
    assert other.rates[0] == pytest.approx(10.0) and math.isnan(other.rates[1])
    assert other.rate == pytest.approx(10.0)
