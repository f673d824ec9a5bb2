"""Worker pools in the report: a torch DataLoader's workers and the stages they run.

A pool (stage kind ``workers``) is one stage to the model: each worker runs
the stages nested in it (fetch, the transforms, collate) one after another,
so the pool's worker count applies to their sum and the pool's row carries
the bound. The report shows the members as a breakdown of the pool's time:
each one's share, and how much of it was CPU rather than waiting. Shares
come from the record's own statistics, so they are shown even when the
pipeline was not analysed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from plumber.records.kinds import POOL
from plumber.records.profile import Pipeline, Stage
from plumber.reports import format as fmt


@dataclass(frozen=True)
class Share:
    """A member's part of its pool's wall time, and the CPU part of that (None: not measured)."""

    wall: float
    cpu: float | None

    @property
    def waiting(self) -> float | None:
        """The share of the member's own wall time not spent on CPU."""
        if self.cpu is None or self.wall <= 0:
            return None
        return min(max(1.0 - self.cpu / self.wall, 0.0), 1.0)

    def text(self) -> str:
        """``97% of pool time · 98% waiting`` (the waiting share is of the member's own time)."""
        waiting = self.waiting
        tail = f" \u00b7 {fmt.fraction(waiting)} waiting" if waiting is not None else ""
        return f"{fmt.fraction(self.wall)} of pool time{tail}"


def pool_members(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
    """Each pool's id -> the ids of the stages its workers run, in the order they run.

    The order follows the members' inputs (fetch, then each transform, then
    collate); members whose inputs do not say keep the record's order.
    """
    pools = {s.id for s in pipeline.stages if s.kind == POOL}
    members: dict[str, list[Stage]] = {}
    for stage in pipeline.stages:
        if stage.nested_in in pools and stage.id not in pools:
            members.setdefault(stage.nested_in, []).append(stage)
    return {pool: _in_order(stages) for pool, stages in members.items()}


def _in_order(stages: list[Stage]) -> tuple[str, ...]:
    """Stage ids with every stage after the siblings it reads from (stable otherwise)."""
    ids = {s.id for s in stages}
    placed: list[str] = []
    pending = list(stages)
    while pending:
        ready = [s for s in pending if all(i in placed or i not in ids for i in s.inputs)]
        step = ready[:1] or pending[:1]  # a cycle, should a record hold one, is cut
        placed.append(step[0].id)
        pending.remove(step[0])
    return tuple(placed)


def pool_of_member(pipeline: Pipeline) -> dict[str, str]:
    """Each member's id -> the id of the pool it runs in."""
    return {m: pool for pool, ids in pool_members(pipeline).items() for m in ids}


def member_shares(pipeline: Pipeline) -> Mapping[str, Share]:
    """Each measured member's share of its pool's wall time, CPU part included.

    The pool's statistics are the totals of its members; where the pool has
    none, the members' sum stands in.
    """
    by_id = {s.id: s for s in pipeline.stages}
    shares: dict[str, Share] = {}
    for pool_id, ids in pool_members(pipeline).items():
        walls = {m: _wall(by_id[m]) for m in ids}
        measured = {m: wall for m, wall in walls.items() if wall is not None}
        total = _wall(by_id[pool_id]) or sum(measured.values())
        if total <= 0:
            continue
        for member, wall in measured.items():
            stats = by_id[member].stats
            cpu = stats.cpu_time_s if stats is not None else None
            shares[member] = Share(wall / total, cpu / total if _finite(cpu) else None)
    return shares


def _wall(stage: Stage) -> float | None:
    """The stage's wall seconds over the run, None when not measured."""
    stats = stage.stats
    return stats.wall_time_s if stats is not None and _finite(stats.wall_time_s) else None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pool_caption(pipeline: Pipeline, pool_id: str, short: bool = False) -> str:
    """What the pool's members are: ``runs inside the 2 DataLoader workers, one after another``.

    ``short`` is the graph's caption over the members: ``each of the 2 workers runs, in turn:``.
    """
    workers = pipeline.stage(pool_id).knobs.get("num_workers")
    if workers == 0:
        if short:
            return "the main process runs, in turn:"
        return "runs in the main process (num_workers=0), one after another"
    count = f"{workers} " if isinstance(workers, int) else ""
    if short:
        return f"each of the {count}workers runs, in turn:"
    plural = "s" if workers != 1 else ""
    return f"runs inside the {count}DataLoader worker{plural}, one after another"
