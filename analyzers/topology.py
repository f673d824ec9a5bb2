"""How the stages of a pipeline connect, and which of them may be changed.

The analysis needs three structural questions answered: what feeds a stage
(everything a cache placed after it would make redundant), what lies
between a stage and the consumer (a ``take`` or ``repeat`` there changes what
a cache would hold), and which stage's knob sets a stage's parallelism
(a stage nested in an interleave body runs on the interleave's workers).
"""

from __future__ import annotations

from plumber.records.kinds import POOL
from plumber.records.profile import Pipeline, Stage

#: Kinds whose parallelism the user can set (``num_parallel_calls`` in tf.data,
#: ``num_workers`` for a torch DataLoader's worker pool).
PARALLEL_KINDS = frozenset({"map", "interleave", "batch", "parallel_batch", POOL})


def is_random(stage: Stage) -> bool:
    """True when the stage's output differs between epochs (shuffle, random or stateful ops).

    Nothing may be cached after such a stage: the cache would freeze one
    epoch's randomness for every later epoch.
    """
    knobs = stage.knobs
    return stage.kind == "shuffle" or knobs.get("random") is True or knobs.get("stateful") is True


def below(pipeline: Pipeline, stage_id: str) -> frozenset[str]:
    """``stage_id`` and every stage that feeds it, the bodies nested in them included."""
    by_id = {s.id: s for s in pipeline.stages}
    nested: dict[str, list[str]] = {}
    for stage in pipeline.stages:
        if stage.nested_in is not None:
            nested.setdefault(stage.nested_in, []).append(stage.id)
    seen: set[str] = set()
    pending = [stage_id]
    while pending:
        sid = pending.pop()
        if sid in seen or sid not in by_id:
            continue
        seen.add(sid)
        pending.extend(by_id[sid].inputs)
        pending.extend(nested.get(sid, ()))
    return frozenset(seen)


def above(pipeline: Pipeline, stage_id: str) -> tuple[Stage, ...]:
    """The stages that consume ``stage_id``'s output, directly or through others."""
    return tuple(
        s for s in pipeline.stages if s.id != stage_id and stage_id in below(pipeline, s.id)
    )


def parallelism_owner(pipeline: Pipeline, stage: Stage) -> Stage | None:
    """The written stage whose parallelism knob sets how many of ``stage``'s calls run at once.

    A stage nested in an interleave body is driven by the interleave's
    workers; a stage of a parallel kind, or one that already has a
    ``parallelism`` knob, owns its own. Stages the framework added cannot be
    edited by the user, so they own nothing.
    """
    if stage.nested_in is not None:
        try:
            return parallelism_owner(pipeline, pipeline.stage(stage.nested_in))
        except KeyError:
            return None
    if stage.written and (stage.kind in PARALLEL_KINDS or "parallelism" in stage.knobs):
        return stage
    return None


def pool_of(pipeline: Pipeline, stage: Stage) -> str | None:
    """The id of the worker pool ``stage`` runs in, one after its siblings, or None.

    A torch DataLoader worker fetches a sample, transforms it and collates
    the batch itself: the pool's worker count applies to the sum of those
    stages, not to each one, so the model treats the pool as one stage and
    its members as a breakdown of it.
    """
    seen = set()
    while stage.nested_in is not None and stage.nested_in not in seen:
        seen.add(stage.nested_in)
        try:
            stage = pipeline.stage(stage.nested_in)
        except KeyError:
            return None
        if stage.kind == POOL:
            return stage.id
    return None


def parallelism(pipeline: Pipeline, stage: Stage) -> float:
    """How many calls of ``stage`` ran at once: the autotuned value, the knob, or 1.

    A nested stage inherits the parallelism of the stage whose body holds it.
    """
    ran = stage.stats.parallelism if stage.stats is not None else None
    if ran is not None and ran > 0:
        return float(ran)
    knob = stage.knobs.get("parallelism")
    if isinstance(knob, int) and not isinstance(knob, bool) and knob > 0:
        return float(knob)
    if stage.nested_in is not None:
        try:
            return parallelism(pipeline, pipeline.stage(stage.nested_in))
        except KeyError:
            return 1.0
    return 1.0
