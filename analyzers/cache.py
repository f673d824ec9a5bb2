"""Cache placement: where an in-memory cache would pay, and where it must not go.

A cache after stage s replays s's output from the second epoch on, so the
demand of s and everything below it disappears in steady state; the
predicted rate is the minimum of the bounds that remain (DESIGN.md section
4). Its size is bytes per element x the stream's cardinality and must fit a
share of the available memory. A cache never goes after a random or
stateful stage (it would freeze one epoch's randomness), below a ``take``
(TF discards a cache that is not read to its end), or on a stream that is
infinite or of unknown size. Candidates that would help but break a rule are
returned with ``feasible=False`` and the reason, so a reader learns why.
"""

from __future__ import annotations

import dataclasses
import math

from plumber.analyzers import text
from plumber.analyzers.bounds import compute_bounds, rate_of
from plumber.analyzers.results import WhatIf
from plumber.analyzers.stages import cpu_demand
from plumber.analyzers.topology import above, below, is_random
from plumber.analyzers.whatif import WORTH_LISTING, Scene
from plumber.record import Stage

#: Share of the available memory a cache may take.
MEMORY_BUDGET = 0.5

#: Kinds after which a cache is pointless or wrong: caching a cache or a
#: buffer, or a stream that a repeat/take/skip already reshaped.
NOT_AFTER = frozenset({"cache", "prefetch", "repeat", "take", "skip", "config"})


def cache_what_ifs(scene: Scene) -> list[WhatIf]:
    """Caches that would raise the rate, in stage order, and the better ones ruled out.

    A ruled-out cache is listed only if it beats every allowed one, once per
    reason (the best such), so a reader learns what stands in the way.
    """
    pipeline = scene.pipeline
    candidates = []
    for stage in pipeline.stages:
        if stage.nested_in is not None or stage.kind in NOT_AFTER or stage.stats is None:
            continue
        covered = below(pipeline, stage.id)
        if any(pipeline.stage(sid).kind == "repeat" for sid in covered):
            continue
        predicted = _cached_rate(scene, covered)
        if predicted > WORTH_LISTING * scene.predicted_rate:
            candidates.append(_what_if(scene, stage, covered, predicted))
    best_allowed = max((w.predicted_rate for w in candidates if w.feasible), default=0.0)
    ruled_out: dict[str, WhatIf] = {}
    for w in candidates:
        if not w.feasible and w.predicted_rate > best_allowed:
            kept = ruled_out.get(w.reason)
            if kept is None or w.predicted_rate > kept.predicted_rate:
                ruled_out[w.reason] = w
    return [w for w in candidates if w.feasible or ruled_out.get(w.reason) is w]


def _cached_rate(scene: Scene, covered: frozenset[str]) -> float:
    """The steady-state rate with every stage in ``covered`` replayed from memory.

    The disk bound goes too when every stage that reads storage is covered.
    """
    remaining = tuple(a for a in scene.analyses if a.stage_id not in covered)
    readers = {
        a.stage_id
        for a in scene.analyses
        if a.kind == "source" or a.resource in ("latency", "disk")
    }
    limits = scene.limits
    if readers <= covered:
        limits = dataclasses.replace(limits, disk_bytes_per_root=None)
    return rate_of(compute_bounds(remaining, limits))


def _what_if(scene: Scene, stage: Stage, covered: frozenset[str], predicted: float) -> WhatIf:
    problem, contents = _obstacle(scene, stage, covered)
    saved = sum(cpu_demand(a) or 0.0 for a in scene.analyses if a.stage_id in covered)
    if problem is None:
        reason = (
            f"From the second epoch on, the {len(covered)} stage(s) at and below {stage.id} "
            f"no longer run ({text.ms(saved)} of CPU per root element saved); the cache "
            f"holds {contents}."
        )
    else:
        reason = f"Not proposed: {problem}."
    return WhatIf(
        stage_id=stage.id,
        knob="cache",
        value="memory",
        change=f"cache in memory after {text.where(stage)}",
        predicted_rate=predicted,
        speedup=scene.speedup(predicted),
        reason=reason,
        feasible=problem is None,
    )


def _obstacle(scene: Scene, stage: Stage, covered: frozenset[str]) -> tuple[str | None, str]:
    """Why a cache after ``stage`` must not be proposed (None if it may), and what it holds."""
    pipeline = scene.pipeline
    random = [s for s in pipeline.stages if s.id in covered and is_random(s)]
    if random:
        first = min(random, key=lambda s: len(below(pipeline, s.id)))
        return (
            f"{first.id} is random or stateful, and a cache after it would replay one "
            f"epoch's randomness in every epoch", "",
        )
    downstream = above(pipeline, stage.id)
    if any(s.kind == "take" for s in downstream):
        return "a take() above it stops reading early, and TF discards an unfinished cache", ""
    cardinality, basis = _cardinality(scene, stage, downstream)
    if cardinality is None:
        return basis, ""
    stats = stage.stats
    if stats is None or stats.elements <= 0 or stats.bytes_produced <= 0:
        return "the bytes per element it produces were not measured", ""
    size = stats.bytes_produced / stats.elements * cardinality
    if size > scene.memory_budget:
        available = scene.memory_budget / MEMORY_BUDGET
        return (
            f"it would hold about {text.size(size)}, more than {MEMORY_BUDGET:.0%} of the "
            f"{text.size(available)} of available memory", "",
        )
    return None, f"about {text.size(size)} ({cardinality:.0f} elements, {basis})"


def _cardinality(
    scene: Scene, stage: Stage, downstream: tuple[Stage, ...]
) -> tuple[float | None, str]:
    """Elements one epoch of ``stage``'s stream holds, or None with the reason it is unknown.

    A ``cardinality`` knob wins. Otherwise the run's element count is one
    epoch per pass of the finite repeats above, provided the run read the
    data to its end; a run that plumber or the user stopped did not.
    """
    known = stage.knobs.get("cardinality")
    if isinstance(known, int) and not isinstance(known, bool) and known >= 0:
        return float(known), "its cardinality"
    endless = [s for s in downstream if s.kind == "repeat" and _count(s) is None]
    if scene.pipeline.infinite and not endless:
        return None, "the stream is infinite"
    if endless:
        return None, "its size is unknown: an endless repeat() above it hides the epoch"
    run = scene.run
    if run.bounded_by is not None or run.interrupted or run.exit_status != 0:
        return None, "its size is unknown: the run stopped before the data ended"
    passes = math.prod(_count(s) or 1 for s in downstream if s.kind == "repeat")
    elements = stage.stats.elements if stage.stats is not None else 0
    return elements / passes, "size from this run, assuming it read whole epochs"


def _count(repeat: Stage) -> int | None:
    """How many passes a repeat makes; None for an endless (or unknown) one."""
    count = repeat.knobs.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    return None
