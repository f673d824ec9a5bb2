"""Whether a stage's output changes from one pass to the next, seen by running it twice.

Reading a stage's functions (:mod:`plumber.tf.written`) finds the random ops
TF names; a stage can still draw randomness no op name shows (Python state
behind a ``py_function``, a custom op, a seed fed in from outside). Every
written stage is a runnable prefix pipeline, and a fresh iterator over it is
what a new epoch gets: when two fresh iterators disagree on the first few
elements, the stage changes between epochs and nothing may be cached after
it. Agreement proves nothing, so it changes nothing.

Only stages with nothing random below them are run, starting from the
highest such ones: when one disagrees, its inputs are run to find the stage
where the difference first appears. A prefix that may reorder its elements
(``deterministic=False``) is not compared, since order alone would differ,
nor is one holding a written ``cache()`` (two iterators would race to fill
its file, and a filled cache replays what it holds); the stages below them
are. The whole check stops at a deadline and never raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from plumber.tf.written import WrittenStage

#: Elements compared per prefix (while time is left): a coin-flip
#: augmentation of single elements agrees on all of them with odds 2**-16.
ELEMENTS = 16

#: Seconds the check may take per profile, shared by its pipelines (past the
#: deadline it stops after the element pair in hand).
BUDGET_S = 2.0

#: Tolerances for floating-point elements: summation order may differ
#: between runs in the last bits; augmentation changes far more.
_RTOL = 1e-5
_ATOL = 1e-7


def is_declared_random(stage: WrittenStage) -> bool:
    """The stage shuffles, or its functions call random or stateful ops (read from the graph)."""
    knobs = stage.knobs
    return stage.kind == "shuffle" or bool(knobs.get("random") or knobs.get("stateful"))


def find_random_stages(root: WrittenStage, budget_s: float = BUDGET_S) -> list[WrittenStage]:
    """Stages whose output differed between two fresh passes, with their ``random`` knob set.

    Stages at or above a stage already known to be random are not run: no
    cache may go there anyway.
    """
    deadline = time.perf_counter() + budget_s
    stages = root.walk()
    tainted: set[str] = set()
    for stage in stages:
        if is_declared_random(stage) or any(i.id in tainted for i in stage.inputs):
            tainted.add(stage.id)
    consumers: dict[str, list[WrittenStage]] = {}
    for stage in stages:
        for child in stage.inputs:
            consumers.setdefault(child.id, []).append(stage)
    tops = [
        s for s in stages
        if s.id not in tainted
        and (s is root or all(c.id in tainted for c in consumers.get(s.id, [])))
    ]
    found: list[WrittenStage] = []
    for top in reversed(tops):
        found.extend(s for s in _check(top, deadline) if s not in found)
    for stage in found:
        stage.knobs["random"] = True
    return found


def _check(stage: WrittenStage, deadline: float) -> list[WrittenStage]:
    """Where the output of ``stage``'s prefix starts to differ between passes, if it does.

    A prefix that cannot be compared hands the question to its inputs.
    """
    if time.perf_counter() >= deadline:
        return []
    if not _comparable(stage):
        found: list[WrittenStage] = []
        for child in stage.inputs:
            found.extend(s for s in _check(child, deadline) if s not in found)
        return found
    return _first_differing(stage, deadline) if _differs(stage, deadline) else []


def _first_differing(stage: WrittenStage, deadline: float) -> list[WrittenStage]:
    """The stages at or below ``stage`` (whose output differs) where the difference starts."""
    below = [child for child in stage.inputs if _differs(child, deadline)]
    if not below:
        return [stage]
    found: list[WrittenStage] = []
    for child in below:
        found.extend(s for s in _first_differing(child, deadline) if s not in found)
    return found


def _differs(stage: WrittenStage, deadline: float) -> bool:
    """True when two fresh passes over ``stage``'s prefix yield different first elements."""
    if not _comparable(stage):
        return False
    try:
        first, second = iter(stage.dataset), iter(stage.dataset)
        return _streams_differ(first, second, deadline)
    except Exception:  # noqa: BLE001 - a prefix that cannot run gives no evidence
        return False


def _comparable(stage: WrittenStage) -> bool:
    """Whether two passes over the prefix may be compared: it keeps its order
    (no ``deterministic=False``) and holds no cache of the user's."""
    prefix = stage.walk()
    if any(s.kind == "cache" for s in prefix):
        return False
    if any(_scalar_false(s.knobs.get("deterministic")) for s in prefix):
        return False
    try:
        return stage.dataset.options().deterministic is not False
    except Exception:  # noqa: BLE001 - options unreadable: order not known to be kept
        return False


def _scalar_false(value: Any) -> bool:
    """A ``deterministic`` knob as TF stores it: False, or the string "false"."""
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _streams_differ(first: Iterator[Any], second: Iterator[Any], deadline: float) -> bool:
    for _ in range(ELEMENTS):
        a, b = next(first, None), next(second, None)
        if a is None or b is None:
            return (a is None) != (b is None)
        if not _same_element(a, b):
            return True
        if time.perf_counter() >= deadline:
            return False
    return False


def _same_element(a: Any, b: Any) -> bool:
    import numpy as np
    import tensorflow as tf

    try:
        left = tf.nest.flatten(a, expand_composites=True)
        right = tf.nest.flatten(b, expand_composites=True)
    except (TypeError, ValueError):
        return False
    if len(left) != len(right):
        return False
    for x, y in zip(left, right, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if np.issubdtype(x.dtype, np.inexact):
            if not np.allclose(x, y, rtol=_RTOL, atol=_ATOL, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True
