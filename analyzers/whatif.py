"""Predicted outcomes of parallelism and prefetch changes.

A what-if changes the stage analyses (or the limits) the bounds are computed
from and takes the new minimum: the same model that explains the run
predicts the change. Cache placement lives in :mod:`plumber.analyzers.cache`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from plumber.analyzers import text
from plumber.analyzers.bounds import (
    CLEARLY_ABOVE,
    STAGE_RESOURCES,
    Limits,
    binding,
    compute_bounds,
    rate_of,
    step_cores,
    step_fills_cores,
)
from plumber.analyzers.results import Bound, StageAnalysis, WhatIf
from plumber.analyzers.topology import parallelism, parallelism_owner
from plumber.records.profile import NetworkRequests, Pipeline, RunInfo, Stage

#: A consumer that waits more than this share of its time is visibly stalled.
STALLED = 0.1

#: Gains smaller than this factor over the current prediction are not worth listing.
WORTH_LISTING = 1.01

#: A smaller change (fewer workers, a cheaper cut) within this share of the
#: best one's predicted rate is preferred to it.
NEARLY_AS_GOOD = 0.99


@dataclass(frozen=True)
class Scene:
    """The as-run model of one pipeline that what-ifs change.

    ``memory_budget`` is the bytes a cache or buffer may take in memory;
    ``disk_budget`` the bytes a file cache may take in ``cache_dir`` (None
    when its free space is unknown). ``network`` is what the run's HTTP
    requests showed, when it made any. ``busy_share`` is the share of the
    usable cores the run was measured to keep busy: over the steady window
    where it was recorded, else over the whole run's samples (None without
    either); a CPU verdict is checked against it.
    """

    pipeline: Pipeline
    run: RunInfo
    analyses: tuple[StageAnalysis, ...]
    limits: Limits
    bounds: tuple[Bound, ...]
    observed_rate: float
    stall_share: float | None
    memory_budget: float
    disk_budget: float | None = None
    cache_dir: str | None = None
    network: NetworkRequests | None = None
    busy_share: float | None = None

    @property
    def predicted_rate(self) -> float:
        """The model's rate for the pipeline as it ran."""
        return rate_of(self.bounds)

    def speedup(self, predicted: float) -> float:
        """``predicted`` over the observed rate (NaN when nothing was observed)."""
        observed = self.observed_rate
        return predicted / observed if observed > 0 else math.nan


def parallelism_what_ifs(scene: Scene) -> list[WhatIf]:
    """More parallelism at every stage that bounds the pipeline and has a knob for it.

    Tries ``p + 1`` and ``p = cores``; a stage that waits also gets the
    concurrency Little's law asks for to reach the next bound
    (``rate x wall seconds per root element``), which may exceed the cores
    because a waiting call holds no core. Only changes that would raise the
    predicted rate are returned.
    """
    pipeline = scene.pipeline
    groups: dict[str, list[StageAnalysis]] = {}
    owners: dict[str, Stage] = {}
    for a in scene.analyses:
        owner = parallelism_owner(pipeline, pipeline.stage(a.stage_id))
        if a.resource in STAGE_RESOURCES and owner is not None:
            groups.setdefault(owner.id, []).append(a)
            owners[owner.id] = owner
    what_ifs = []
    for owner_id, members in groups.items():
        owner = owners[owner_id]
        for value, reason in _candidates(scene, owner, members):
            what_if = _parallelism(scene, owner, members, value, reason)
            if what_if.predicted_rate > WORTH_LISTING * scene.predicted_rate:
                what_ifs.append(_beside_a_full_step(scene, members, what_if))
    return what_ifs


def _beside_a_full_step(scene: Scene, members: list[StageAnalysis], what_if: WhatIf) -> WhatIf:
    """``what_if`` ruled out when its calls would compute beside a step that fills the cores."""
    computes = all(m.resource == "cpu" for m in members)
    if not computes or not step_fills_cores(scene.limits):
        return what_if
    busy = step_cores(scene.limits) or 0.0
    return dataclasses.replace(
        what_if,
        feasible=False,
        reason=(
            f"Not proposed: the training step keeps {busy:.1f} of the "
            f"{scene.limits.cores:g} usable cores busy while it runs, so more calls "
            f"computing beside it would take cores from its threads, a slowdown the model "
            f"cannot predict (the shared CPU bound alone would give "
            f"{text.rate(what_if.predicted_rate)})."
        ),
    )


def _candidates(
    scene: Scene, owner: Stage, members: list[StageAnalysis]
) -> list[tuple[int, str]]:
    """New parallelism values worth predicting, each with the reason it was tried."""
    current = parallelism(scene.pipeline, owner)
    cores = max(1, int(scene.limits.cores))
    waits = any(m.resource in ("latency", "disk") for m in members)
    values = {int(current) + 1: "one more call in flight", cores: "one call per usable core"}
    ids = {m.stage_id for m in members}
    target = rate_of([b for b in scene.bounds if b.stage_id not in ids])
    wall = max(m.wall_demand_s or 0.0 for m in members)
    if waits and math.isfinite(target) and wall > 0:
        needed = math.ceil(target * wall - 1e-9)
        values[needed] = (
            f"Little's law: {text.rate(target)} (the next bound) x {text.ms(wall)} of "
            f"wall time per root element = {needed} calls in flight; waiting calls hold no "
            f"core, so this may exceed the {cores} cores"
        )
    cap = scene.limits.in_flight_cap
    if waits and cap is not None:
        values = {v: r for v, r in values.items() if v <= cap}
        values.setdefault(cap, f"the server refused requests beyond {cap} in flight")
    return sorted(
        (v, r) for v, r in values.items() if v > current and (waits or v <= cores)
    )


def _parallelism(
    scene: Scene, owner: Stage, members: list[StageAnalysis], value: int, why: str
) -> WhatIf:
    ids = {m.stage_id for m in members}
    changed = tuple(
        dataclasses.replace(a, parallelism=float(value), max_rate=value / a.wall_demand_s,
                            loop_step_s=None)
        if a.stage_id in ids and a.wall_demand_s
        else a
        for a in scene.analyses
    )
    bounds = compute_bounds(changed, scene.limits)
    predicted = rate_of(bounds)
    new_binding = binding(bounds)
    return WhatIf(
        stage_id=owner.id,
        knob="parallelism",
        value=str(value),
        change=text.parallelism_change(owner, parallelism(scene.pipeline, owner), value),
        predicted_rate=predicted,
        speedup=scene.speedup(predicted),
        reason=f"{why[0].upper()}{why[1:]}; the pipeline would then be bound by "
        f"{new_binding.name} ({new_binding.kind}) at {text.rate(predicted)}.",
    )


#: Root kinds that hand elements on without a buffer of their own: a prefetch
#: below them (``with_options``, ``take``, ``repeat``) is the one that runs ahead.
_UNBUFFERED_ROOTS = frozenset({"config", "take", "skip", "repeat"})


def _buffering_root(pipeline: Pipeline) -> Stage | None:
    """The root, or the stage below the pass-through stages that end the pipeline."""
    by_id = {s.id: s for s in pipeline.stages}
    stage = by_id.get(pipeline.root)
    seen: set[str] = set()
    while stage is not None and stage.kind in _UNBUFFERED_ROOTS and len(stage.inputs) == 1:
        seen.add(stage.id)
        below = by_id.get(stage.inputs[0])
        if below is None or below.id in seen:
            break
        stage = below
    return stage


def prefetch_what_if(scene: Scene) -> WhatIf | None:
    """A deeper (or a first) prefetch buffer at the root, when the model says it pays.

    A prefetch cannot raise any bound; it recovers the gap between the
    smallest bound and the observed rate. With a prefetch already at the
    root, that gap is stall variability: the loop waited although the
    pipeline outruns the step on average. The buffer must fit the memory budget.
    """
    predicted = scene.predicted_rate
    if not (math.isfinite(predicted) and predicted > CLEARLY_ABOVE * scene.observed_rate):
        return None
    root = _buffering_root(scene.pipeline)
    if root is None or scene.pipeline.is_loader:
        # A DataLoader's workers already run ahead (``prefetch_factor`` batches each).
        return None
    if root.kind == "prefetch":
        consumer = scene.limits.consumer_rate
        supply = rate_of([b for b in scene.bounds if b.kind != "consumer"])
        stall = scene.stall_share
        if consumer is None or stall is None or stall <= STALLED:
            return None
        if not supply > CLEARLY_ABOVE * consumer:
            return None
        current = _buffer_size(root)
        value = max(2 * current, current + 2)
        change = f"prefetch buffer {current} -> {value} at {text.where(root)}"
        reason = (
            f"The loop waited {stall:.0%} of its time although the pipeline can deliver "
            f"{text.rate(supply)}, above the step's {text.rate(consumer)}: a deeper buffer "
            f"absorbs the variation."
        )
    else:
        value = 2
        change = f"prefetch({value}) after {text.where(root)}"
        reason = (
            "Nothing runs the pipeline ahead of the training step; a prefetch buffer "
            "lets them overlap."
        )
    stats = root.stats
    if stats is not None and stats.elements > 0:
        if stats.bytes_produced / stats.elements * value > scene.memory_budget:
            return None
    return WhatIf(
        stage_id=root.id,
        knob="prefetch",
        value=str(value),
        change=change,
        predicted_rate=predicted,
        speedup=scene.speedup(predicted),
        reason=reason,
    )


def _buffer_size(stage: Stage) -> int:
    """The buffer a prefetch ran with (autotuned value), else as written, else 1."""
    ran = stage.stats.buffer_size if stage.stats is not None else None
    if ran is not None and ran > 0:
        return ran
    knob = stage.knobs.get("buffer_size")
    return knob if isinstance(knob, int) and knob > 0 else 1
