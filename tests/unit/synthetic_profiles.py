"""Synthetic profiles for unit tests of the analysis and the tuner.

``stage`` builds one measured stage; ``make_profile`` chains stages into a
one-pipeline profile with a consumer, on a machine of the given size.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plumber.record import (
    ConsumerStats,
    Machine,
    Pipeline,
    Profile,
    RunInfo,
    SourceLocation,
    Stage,
    StageStats,
    TimeSeries,
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
) -> Profile:
    """A one-pipeline profile; the last stage is the root.

    A stage without inputs reads the one before it, unless it is nested in
    another stage's body.
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
    )
    return Profile(
        run=RunInfo(("train.py",), "2025-01-01T00:00:00+00:00", 10.0, 0,
                    framework="tensorflow", bounded_by=bounded_by),
        machine=Machine(4, cores, 16_000_000_000, memory, disk_read_bps=disk_bps),
        pipelines=(pipeline,),
        resources=resources or TimeSeries(),
    )
