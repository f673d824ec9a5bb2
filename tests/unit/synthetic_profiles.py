"""Synthetic profiles for unit tests of the analysis and the tuner.

``stage`` builds one measured stage; ``make_profile`` chains stages into a
one-pipeline profile with a consumer, on a machine of the given size.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plumber.records.profile import (
    ConsumerStats,
    IteratorPass,
    Machine,
    Pipeline,
    Profile,
    RunInfo,
    SourceLocation,
    Stage,
    StageStats,
    TimeSeries,
    WorkerStats,
)


def stage(
    sid: str,
    kind: str,
    elements: int,
    wall: float,
    cpu: float | None = -1.0,
    *,
    parallelism: int | None = None,
    knobs: dict[str, Any] | None = None,
    bytes_per_element: int = 0,
    op: str = "",
    line: int | None = None,
) -> Stage:
    """A measured stage; ``cpu=-1`` (default) means CPU time equal to wall time."""
    return Stage(
        id=sid,
        kind=kind,
        op=op or kind.capitalize(),
        knobs=knobs or {},
        source=SourceLocation("train.py", line) if line is not None else None,
        stats=StageStats(
            elements=elements,
            wall_time_s=wall,
            cpu_time_s=wall if cpu == -1.0 else cpu,
            bytes_produced=bytes_per_element * elements,
            parallelism=parallelism,
        ),
    )


def make_profile(
    *stages: Stage,
    wait_s: float,
    step_s: float,
    steps: int = 100,
    cores: float = 2.0,
    memory: int = 8_000_000_000,
    disk_bps: float | None = None,
    resources: TimeSeries | None = None,
    infinite: bool = False,
    bounded_by: str | None = None,
    passes: tuple[IteratorPass, ...] = (),
) -> Profile:
    """A one-pipeline profile; the last stage is the root.

    A stage without inputs reads the one before it, unless it is nested in
    another stage's body. ``passes`` are the iterators' passes over the data
    (none recorded by default, as in profiles written before they were).
    """
    chained = tuple(
        dataclasses.replace(s, inputs=(stages[i - 1].id,))
        if i and not s.inputs and s.nested_in is None
        else s
        for i, s in enumerate(stages)
    )
    pipeline = Pipeline(
        id="pipeline-0",
        root=chained[-1].id,
        stages=chained,
        consumer=ConsumerStats("python_next", steps, wait_s, step_s),
        duration_s=wait_s + step_s,
        infinite=infinite,
        passes=passes,
    )
    return Profile(
        run=RunInfo(("train.py",), "2025-01-01T00:00:00+00:00", 10.0, 0,
                    framework="tensorflow", bounded_by=bounded_by),
        machine=Machine(4, cores, 16_000_000_000, memory, disk_read_bps=disk_bps),
        pipelines=(pipeline,),
        resources=resources or TimeSeries(),
    )


def loader_profile(
    fetch: tuple[float, float],
    transforms: tuple[tuple[str, float, float, bool], ...],
    *,
    num_workers: int,
    batch_size: int = 8,
    batches: int = 100,
    wait_s: float,
    step_s: float,
    cores: float = 2.0,
    memory: int = 8_000_000_000,
    sample_bytes: int = 12_288,
    cardinality: int | None = 400,
    map_style: bool = True,
    cache_dir_free: int | None = 50_000_000_000,
    worker_rss: int = 0,
) -> Profile:
    """A torch DataLoader profile as ``docs/torch-pipelines.md`` describes it.

    ``fetch`` and each transform give seconds of wall and CPU per sample;
    a transform is ``(op, wall, cpu, random)``. Collation costs 1% of the fetch.
    The default cardinality makes the 100 batches of 8 two passes over the data.
    """
    samples = batches * batch_size
    loader_line = SourceLocation("train.py", 40)
    p = max(num_workers, 1)

    def member(sid: str, kind: str, op: str, wall: float, cpu: float, elements: int,
               inputs: tuple[str, ...], knobs: dict[str, Any]) -> Stage:
        return Stage(
            id=sid, kind=kind, op=op, inputs=inputs, knobs=knobs, source=loader_line,
            nested_in="workers",
            stats=StageStats(elements, wall * elements, cpu * elements,
                             sample_bytes * elements, parallelism=p),
        )

    stages = [member("fetch", "source", "__getitem__", *fetch, samples, (), {})]
    for i, (op, wall, cpu, random) in enumerate(transforms):
        stages.append(member(f"transform_{i}", "map", op, wall, cpu, samples,
                             (stages[-1].id,), {"index": i, "random": random}))
    collate_wall = 0.01 * fetch[0] * batch_size
    stages.append(Stage(
        id="collate", kind="batch", op="default_collate", inputs=(stages[-1].id,),
        knobs={"batch_size": batch_size}, source=loader_line, nested_in="workers",
        stats=StageStats(batches, collate_wall * batches, collate_wall * batches,
                         sample_bytes * samples, parallelism=p),
    ))
    wall = sum(s.stats.wall_time_s for s in stages)
    cpu = sum(s.stats.cpu_time_s for s in stages)
    knobs: dict[str, Any] = {
        "parallelism": p, "num_workers": num_workers, "prefetch_factor": 2 if num_workers else None,
        "persistent_workers": False, "pin_memory": False, "batch_size": batch_size,
        "map_style": map_style, "iterations": 1,
    }
    if cardinality is not None:
        knobs["cardinality"] = cardinality
    pool = Stage(
        id="workers", kind="workers", op="DataLoader", knobs=knobs, source=loader_line,
        stats=StageStats(batches, wall, cpu, sample_bytes * samples, parallelism=p),
    )
    pipeline = Pipeline(
        id="loader-0", root="workers", stages=(*stages, pool),
        consumer=ConsumerStats("python_next", batches, wait_s, step_s),
        duration_s=wait_s + step_s,
        workers=tuple(
            WorkerStats(i, 1000 + i, samples // p, worker_rss, worker_rss, worker_rss)
            for i in range(num_workers)
        ) if worker_rss else (),
    )
    return Profile(
        run=RunInfo(("train.py",), "2025-01-01T00:00:00+00:00", 10.0, 0, framework="torch"),
        machine=Machine(4, cores, 16_000_000_000, memory, cache_dir="/cache",
                        cache_dir_free_bytes=cache_dir_free),
        pipelines=(pipeline,),
    )
