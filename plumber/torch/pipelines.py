"""Turn what was seen of one DataLoader into its Pipeline record (docs/torch-pipelines.md).

Inputs are plain data: a :class:`LoaderSummary` from the main process (the
loader's source line, knobs, transforms, consumer timing) and the stats
snapshots of every process that ran its chain (each worker's file, or the
main process's recorder when ``num_workers == 0``; see
``plumber/torch/workerside.py``). Snapshots are cumulative per process, so
the totals are their sums. Pure: no torch, no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plumber.measure.steady import Steady
from plumber.records.kinds import PIN_MEMORY, POOL
from plumber.records.profile import (
    ConsumerStats,
    IteratorPass,
    Pipeline,
    SourceLocation,
    Stage,
    StageStats,
    WorkerStats,
)
from plumber.torch.randomness import TransformInfo
from plumber.torch.workerside import (
    COLLATE,
    FETCH,
    StageCounts,
    WorkerSnapshot,
    transform_id,
)

NOT_CALLED = (
    "not timed: the dataset did not call it through its transform attribute "
    "(its time is part of fetch)"
)
NO_STATS = "no statistics came back from the processes that ran the chain"
WORKERS_ONLY = (
    "treated as random: found only in the worker processes, where it was not applied "
    "twice to compare"
)


@dataclass(frozen=True)
class LoaderSummary:
    """What the main process saw of one DataLoader over the run.

    ``transforms`` is (op, random, note) per transform as found on the
    dataset and decided there (:mod:`plumber.torch.randomness`), and
    ``fetch_random``/``fetch_note`` the same for the fetch; ``pin`` counts
    the pin-memory step (batches pinned, their wall and CPU time) when it ran;
    ``passes`` the batches each pass over the data delivered; ``steady`` the
    steps, seconds and main-process CPU after each iterator's first batch.
    """

    source: SourceLocation | None
    knobs: Mapping[str, Any]
    fetch_op: str
    collate_op: str
    transforms: tuple[TransformInfo, ...] = ()
    fetch_random: bool = False
    fetch_note: str = ""
    steps: int = 0
    wait_s: float = 0.0
    step_s: float = 0.0
    step_median_s: float | None = None
    element_spec: str = ""
    pin: StageCounts | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    passes: tuple[IteratorPass, ...] = ()
    steady: Steady | None = None


def build_pipeline(
    pipeline_id: str, summary: LoaderSummary, snapshots: Sequence[WorkerSnapshot]
) -> Pipeline:
    """The Pipeline record of one DataLoader."""
    parallelism = max(int(summary.knobs.get("num_workers") or 0), 1)
    totals = _sum_stages(snapshots)
    errors = _errors(snapshots)
    transforms = _transforms(summary, snapshots)
    chain: list[Stage] = []
    previous: str | None = None
    ids = [FETCH, *(transform_id(i) for i in range(len(transforms))), COLLATE]
    for stage_id in ids:
        chain.append(_chain_stage(stage_id, previous, summary, transforms, totals, parallelism,
                                  errors.get(stage_id), snapshots))
        previous = stage_id
    stages = [_workers_stage(summary, chain, totals, parallelism, snapshots), *chain]
    root = POOL
    pin = summary.pin
    if pin is not None and pin.elements > 0:
        stages.append(Stage(
            id=PIN_MEMORY, kind=PIN_MEMORY, op=PIN_MEMORY, inputs=(POOL,),
            source=summary.source,
            stats=StageStats(elements=pin.elements, wall_time_s=pin.wall_s, cpu_time_s=pin.cpu_s,
                             parallelism=1),
        ))
        root = PIN_MEMORY
    consumer = None
    if summary.steps > 0:
        steady = summary.steady
        consumer = ConsumerStats(
            "python_next", summary.steps, summary.wait_s, summary.step_s,
            step_median_s=summary.step_median_s,
            steady_steps=steady.steps if steady is not None else None,
            steady_s=steady.seconds if steady is not None else None,
            steady_wait_s=steady.wait_s if steady is not None else None,
            cpu_s=steady.cpu_s if steady is not None else None,
            steady_spans=steady.spans if steady is not None else (),
        )
    return Pipeline(
        id=pipeline_id,
        root=root,
        stages=tuple(stages),
        element_spec=summary.element_spec,
        consumer=consumer,
        duration_s=summary.wait_s + summary.step_s,
        notes=(*summary.notes, *_notes(snapshots)),
        workers=_workers(snapshots),
        passes=summary.passes,
    )


def _sum_stages(snapshots: Sequence[WorkerSnapshot]) -> dict[str, StageCounts]:
    totals: dict[str, StageCounts] = {}
    for snapshot in snapshots:
        for stage_id, counts in snapshot.stages.items():
            totals[stage_id] = totals.get(stage_id, StageCounts()).plus(counts)
    return totals


def _errors(snapshots: Sequence[WorkerSnapshot]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for snapshot in snapshots:
        for stage_id, message in snapshot.errors.items():
            errors.setdefault(stage_id, message)
    return errors


def _transforms(
    summary: LoaderSummary, snapshots: Sequence[WorkerSnapshot]
) -> list[TransformInfo]:
    """The main process's view of the transforms, completed by what workers found.

    A transform only the workers found was never checked by applying it
    twice, so it counts as random.
    """
    found = [TransformInfo(*t) for t in summary.transforms]
    for snapshot in snapshots:
        theirs = [op for op, _ in snapshot.transforms]
        if len(theirs) > len(found):
            found += [TransformInfo(op, True, WORKERS_ONLY) for op in theirs[len(found):]]
    return found


def _chain_stage(
    stage_id: str,
    previous: str | None,
    summary: LoaderSummary,
    transforms: list[TransformInfo],
    totals: dict[str, StageCounts],
    parallelism: int,
    error: str | None,
    snapshots: Sequence[WorkerSnapshot],
) -> Stage:
    knobs: dict[str, Any] = {}
    random, note = False, ""
    if stage_id == FETCH:
        op, random, note = summary.fetch_op, summary.fetch_random, summary.fetch_note
    elif stage_id == COLLATE:
        op = summary.collate_op
    else:
        index = int(stage_id.rsplit("_", 1)[1])
        op, random, note = transforms[index]
        knobs["index"] = index
    if random:
        knobs["random"] = True
    if note:
        knobs["note"] = note
    row = totals.get(stage_id)
    stats, reason = None, None
    if FETCH not in totals:
        reason = NO_STATS
    elif stage_id not in (FETCH, COLLATE) and (row is None or row.elements == 0) and not error:
        reason = NOT_CALLED
    else:
        row = row or StageCounts()
        stats = StageStats(
            elements=int(row.elements),
            wall_time_s=row.wall_s,
            cpu_time_s=row.cpu_s,
            bytes_produced=int(_bytes_produced(stage_id, row, totals, len(transforms))),
            bytes_consumed=int(row.bytes_in),
            parallelism=parallelism,
            **_cache_cost(stage_id, snapshots),
        )
    return Stage(
        id=stage_id,
        kind={FETCH: "source", COLLATE: "batch"}.get(stage_id, "map"),
        op=op,
        inputs=(previous,) if previous else (),
        knobs=knobs,
        source=summary.source,
        nested_in=POOL,
        stats=stats,
        unmeasured_reason=reason,
        error=error,
    )


def _bytes_produced(
    stage_id: str, row: StageCounts, totals: dict[str, StageCounts], transforms: int
) -> float:
    """Fetch's output is what its first consumer (transform_0 or collate) took in."""
    if stage_id != FETCH:
        return row.bytes_out
    first = totals.get(transform_id(0)) if transforms else None
    if first is not None and first.elements > 0:
        return first.bytes_in
    collate = totals.get(COLLATE)
    return collate.bytes_in if collate is not None else 0


def _workers_stage(
    summary: LoaderSummary,
    chain: list[Stage],
    totals: dict[str, StageCounts],
    parallelism: int,
    snapshots: Sequence[WorkerSnapshot],
) -> Stage:
    measured = [s.stats for s in chain if s.stats is not None]
    stats = None
    if measured:
        collate = totals.get(COLLATE)
        stats = StageStats(
            elements=sum(s.batches for s in snapshots),
            wall_time_s=sum(s.wall_time_s for s in measured),
            cpu_time_s=sum(s.cpu_time_s or 0.0 for s in measured),
            bytes_produced=int(collate.bytes_out) if collate is not None else 0,
            parallelism=parallelism,
            runqueue_time_s=_runqueue(snapshots),
        )
    return Stage(
        id=POOL,
        kind=POOL,
        op="DataLoader",
        knobs=dict(summary.knobs),
        source=summary.source,
        stats=stats,
        unmeasured_reason=None if stats is not None else NO_STATS,
    )


def _cache_cost(stage_id: str, snapshots: Sequence[WorkerSnapshot]) -> dict[str, float]:
    """The median over processes of what caching ``stage_id``'s samples cost (none: {})."""
    costs = [s.cache_costs[stage_id] for s in snapshots if stage_id in s.cache_costs]
    if not costs:
        return {}
    return {"sample_cache_store_s": statistics.median(c.store_s for c in costs),
            "sample_cache_read_s": statistics.median(c.read_s for c in costs)}


def _runqueue(snapshots: Sequence[WorkerSnapshot]) -> float | None:
    """Seconds the chain's processes waited for a core in fetch calls (None if one did not say)."""
    waits = [s.runqueue_s for s in snapshots]
    if not waits or any(w is None for w in waits):
        return None
    return float(sum(w for w in waits if w is not None))


def _workers(snapshots: Sequence[WorkerSnapshot]) -> tuple[WorkerStats, ...]:
    return tuple(
        WorkerStats(
            worker=s.worker,
            pid=s.pid,
            elements=s.samples,
            rss_start_bytes=int(s.rss.start),
            rss_peak_bytes=int(s.rss.peak),
            rss_end_bytes=int(s.rss.end),
        )
        for s in snapshots
        if s.worker >= 0
    )


def _notes(snapshots: Sequence[WorkerSnapshot]) -> list[str]:
    notes: list[str] = []
    for s in snapshots:
        where = (
            f"worker {s.worker} (pid {s.pid})" if s.worker >= 0
            else "the main process (num_workers=0)"
        )
        for stage_id, message in s.errors.items():
            notes.append(f"{where} raised in {stage_id}: {message}")
        if s.problem:
            notes.append(f"{where}: {s.problem}")
    return notes
