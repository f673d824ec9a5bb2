"""Turn the best what-ifs into recommendations: an edit at the user's source line.

A recommendation is made only for a feasible change that beats both the
observed and the currently predicted rate by a clear margin, so a model
that is optimistic about the run as it is cannot recommend a no-op. Per
stage and knob the smallest change that gets (nearly) the best rate wins:
parallelism 4 is not advised where 2 does as well. Of caches that do
(nearly) equally well, the latest in the chain wins: it spares the most work.
Caches come after the other changes: they pay only from the second epoch
on, and a profile cannot tell how many epochs the training runs. Nothing is
recommended when whether the pipeline or the step binds is too close to
call (:func:`plumber.analyzers.verdict.too_close_to_call`): the verdict
then says so instead of giving advice. Offloading to remote workers
(:mod:`plumber.analyzers.offload`) comes last: it needs more machines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from plumber.analyzers.objectcache import KNOB as OBJECT_CACHE
from plumber.analyzers.objectcache import client_code
from plumber.analyzers.offload import KNOBS as OFFLOAD_KNOBS
from plumber.analyzers.offload import offload_recommendation
from plumber.analyzers.results import Recommendation, WhatIf
from plumber.analyzers.text import parallel_knob
from plumber.analyzers.topology import pool_of
from plumber.analyzers.verdict import too_close_to_call
from plumber.analyzers.whatif import NEARLY_AS_GOOD, Scene
from plumber.records.kinds import AUTOTUNE, POOL
from plumber.records.profile import Stage

#: The knobs that cache: at most one cache is recommended, a stage's or the objects'.
CACHES = frozenset({"cache", OBJECT_CACHE})

#: A change must beat the rate by this factor to be recommended.
WORTHWHILE = 1.1

#: How each framework spells a knob in the user's code; other frameworks
#: get the knob's own name.
ARGUMENT_NAMES: dict[str, dict[str, str]] = {
    "tensorflow": {"parallelism": "num_parallel_calls", "AUTOTUNE": "tf.data.AUTOTUNE"},
}

#: What is said of a change inside a stage a library built: the user's line has no
#: argument for it, so only a plan applies it.
LIBRARY_KNOB = ("no argument at this line sets it; plumber tune plans it, "
                "plumber run --plan applies it")


def recommendations(scene: Scene, what_ifs: Sequence[WhatIf]) -> tuple[Recommendation, ...]:
    """The worthwhile changes, one per stage and knob (one cache at most), caches last.

    ``what_ifs`` must be in the pipeline's stage order (inputs first), which
    is how the what-if functions return them.
    """
    if too_close_to_call(scene) is not None:
        return ()
    known = [r for r in (scene.observed_rate, scene.predicted_rate) if math.isfinite(r)]
    change_floor = WORTHWHILE * max(known, default=math.inf)
    observed = scene.observed_rate
    gap_floor = WORTHWHILE * observed if math.isfinite(observed) else math.inf
    groups: dict[tuple[str | None, str], list[WhatIf]] = {}
    offloads = [w for w in what_ifs if w.knob in OFFLOAD_KNOBS.values()]
    for w in (w for w in what_ifs if w not in offloads):
        # A prefetch raises no bound: it recovers the gap to the predicted rate.
        floor = gap_floor if w.knob == "prefetch" else change_floor
        if w.feasible and w.stage_id is not None and w.predicted_rate > floor:
            key = (None, "cache") if w.knob in CACHES else (w.stage_id, w.knob)
            groups.setdefault(key, []).append(w)
    chosen = [_smallest_nearly_best(group) for group in groups.values()]
    chosen.sort(key=lambda w: (w.knob in CACHES, -w.predicted_rate))
    moved = [offload_recommendation(scene, w) for w in offloads if w.predicted_rate > change_floor]
    return (*(_recommend(scene, w) for w in chosen), *(r for r in moved if r is not None))


def _smallest_nearly_best(group: list[WhatIf]) -> WhatIf:
    best = max(w.predicted_rate for w in group)
    good = [w for w in group if w.predicted_rate >= NEARLY_AS_GOOD * best]
    if all(w.value.isdigit() for w in good):
        return min(good, key=lambda w: int(w.value))
    return good[-1]


def _recommend(scene: Scene, w: WhatIf) -> Recommendation:
    stage = scene.pipeline.stage(w.stage_id or scene.pipeline.root)
    names = ARGUMENT_NAMES.get(scene.run.framework, {})
    if w.knob == "parallelism" and stage.kind == POOL:
        arg, old_value = parallel_knob(stage)
        title = f"Use {w.value} DataLoader workers"
        old, new, source = f"{arg}={old_value}", f"{arg}={w.value}", stage.source
    elif w.knob == "parallelism":
        arg = names.get("parallelism", "parallelism")
        old_value = _written(stage.knobs.get("parallelism"), names)
        title = f"Raise the parallelism of {stage.id} to {w.value}"
        old, new, source = f"{arg}={old_value}", f"{arg}={w.value}", stage.source
    elif w.knob == "cache" and pool_of(scene.pipeline, stage) is not None:
        medium = "in memory" if w.value == "memory" else "on disk"
        title = f"Cache the samples after {stage.id} ({stage.op}) {medium}"
        location = '"memory"' if w.value == "memory" else "DIRECTORY"
        old = "DataLoader(dataset, ...)"
        new = (
            f"DataLoader(plumber.torch.CachedDataset(dataset, upto={_upto(stage)}, "
            f"location={location}), ...)"
        )
        source = stage.source
    elif w.knob == OBJECT_CACHE:
        medium = "in memory" if w.value == "memory" else "on disk"
        title = f"Cache the objects {stage.id} fetches {medium}"
        old, new = client_code('"memory"' if w.value == "memory" else "DIRECTORY")
        source = stage.source
    elif w.knob == "cache":
        medium = "in memory" if w.value == "memory" else "in a file"
        title = f"Cache the output of {stage.id} {medium}"
        argument = "" if w.value == "memory" else "FILENAME"
        old, new, source = _call(stage), f"{_call(stage)}.cache({argument})", stage.source
    elif stage.kind == "prefetch" and stage.written:
        old_value = _written(stage.knobs.get("buffer_size"), names)
        title = f"Deepen the prefetch buffer of {stage.id} to {w.value}"
        old, new, source = f"buffer_size={old_value}", f"buffer_size={w.value}", stage.source
    else:
        target = _last_written(scene, stage)
        title = f"Prefetch {w.value} elements after {target.id}"
        old, new, source = _call(target), f"{_call(target)}.prefetch({w.value})", target.source
    if source is not None and source.built_by and w.knob != OBJECT_CACHE:
        old, new = f"{source.builder}(...)", f"{new} inside it ({LIBRARY_KNOB})"
    return Recommendation(
        title=title,
        stage_id=w.stage_id,
        source=source,
        old=old,
        new=new,
        predicted_rate=w.predicted_rate,
        speedup=w.speedup,
        reason=w.reason,
    )


def _upto(stage: Stage) -> str:
    """How far a sample cache reaches: the transform's index, or ``-1`` for the fetch alone."""
    index = stage.knobs.get("index")
    return str(index) if isinstance(index, int) and stage.kind == "map" else "-1"


def _written(value: Any, names: dict[str, str]) -> str:
    """A knob's value as the user wrote it: ``None`` when unset, AUTOTUNE for -1."""
    if value is None:
        return "None"
    if value == AUTOTUNE:
        return names.get("AUTOTUNE", "AUTOTUNE")
    return str(value)


def _call(stage: Stage) -> str:
    """The call that built a stage, as a user spots it: ``.map(...)``, ``TFRecord(...)``."""
    return f"{stage.op}(...)" if stage.kind == "source" else f".{stage.kind}(...)"


def _last_written(scene: Scene, stage: Stage) -> Stage:
    """``stage`` if the user wrote it, else the nearest written stage below it (if any)."""
    by_id = {s.id: s for s in scene.pipeline.stages}
    seen = {stage.id}
    while not stage.written and stage.inputs and stage.inputs[0] in by_id.keys() - seen:
        stage = by_id[stage.inputs[0]]
        seen.add(stage.id)
    return stage
