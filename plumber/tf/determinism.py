"""Whether a stage's output changes from one pass to the next, seen by running it twice.

Reading a stage's functions (:mod:`plumber.tf.written`) finds the random ops
TF names; a stage can still draw randomness no op name shows (Python state
behind a ``py_function``, a custom op, a seed fed in from outside). Every
written stage is a runnable prefix pipeline, and a fresh iterator over it is
what a new epoch gets: when two fresh iterators disagree on the first few
elements, the stage changes between epochs and nothing may be cached after
it. Agreement proves nothing, so it changes nothing.

Only stages with nothing random below them are run, starting from the
highest such ones. When one disagrees, its inputs are compared on as many
underlying elements (a batch's input on batch-size times as many) to find
where the difference starts; an input that cannot be cleared that way (out
of time, or not comparable) is marked too, so uncertainty never opens a
cache. A prefix that may reorder its elements (``deterministic=False``) is
not compared, since order alone would differ, nor is one holding a written
``cache()`` (two iterators would race to fill its file, and a filled cache
replays what it holds): the stages below them are. The check is bounded in
time and never raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from plumber.tf.written import WrittenStage

#: Elements compared per prefix when looking for a difference: a coin-flip
#: augmentation of single elements agrees on all of them with odds 2**-16.
ELEMENTS = 16

#: Most elements compared per input while finding where a difference starts.
MAX_LOCATING_ELEMENTS = 1024

#: Seconds the search for a difference may take per profile, shared by its
#: pipelines; finding where one starts gets as long again. Past a deadline
#: the element pair in hand is still compared.
BUDGET_S = 2.0

#: Outcomes of comparing two passes over a prefix.
DIFFER, SAME, UNKNOWN = "differ", "same", "unknown"

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
        for stage in _search(top, deadline, budget_s):
            if stage not in found:
                found.append(stage)
    for stage in found:
        stage.knobs["random"] = True
    return found


def _search(stage: WrittenStage, deadline: float, budget_s: float) -> list[WrittenStage]:
    """The random stages at or below ``stage``, if its prefix's passes differ.

    A prefix that cannot be compared hands the question to its inputs.
    """
    if time.perf_counter() >= deadline:
        return []
    verdict = _compare(stage, ELEMENTS, deadline)
    if verdict == DIFFER:
        return _locate(stage, ELEMENTS, time.perf_counter() + budget_s)
    if verdict == UNKNOWN and not _comparable(stage):
        found: list[WrittenStage] = []
        for child in stage.inputs:
            found.extend(s for s in _search(child, deadline, budget_s) if s not in found)
        return found
    return []


def _locate(stage: WrittenStage, count: int, deadline: float) -> list[WrittenStage]:
    """Where the difference seen in ``count`` elements of ``stage`` starts.

    Each input is compared on the elements those ``count`` were made of. An
    input that differs is searched in turn; one that cannot be cleared is
    marked with everything below it. When every input agrees, the
    difference starts at ``stage`` itself.
    """
    found: list[WrittenStage] = []
    for child in stage.inputs:
        share = min(count * _fan_in(stage, child), MAX_LOCATING_ELEMENTS)
        verdict = _compare(child, share, deadline)
        if verdict == DIFFER:
            below = _locate(child, share, deadline)
        elif verdict == UNKNOWN:
            below = child.walk()
        else:
            continue
        found.extend(s for s in below if s not in found)
    return found or [stage]


def _fan_in(stage: WrittenStage, child: WrittenStage) -> int:
    """Input elements per output element of ``stage`` (1 when not known)."""
    mine, theirs = stage.knobs.get("cardinality"), child.knobs.get("cardinality")
    if isinstance(mine, int) and isinstance(theirs, int) and mine > 0 and theirs > mine:
        return -(-theirs // mine)
    size = stage.knobs.get("batch_size")
    if stage.kind == "batch" and isinstance(size, int) and size > 1:
        return size
    return 1


def _compare(stage: WrittenStage, count: int, deadline: float) -> str:
    """Two fresh passes over ``stage``'s prefix, ``count`` elements or to the end:
    DIFFER, SAME (all compared and equal), or UNKNOWN (not comparable, failed,
    or cut short by the deadline)."""
    if not _comparable(stage):
        return UNKNOWN
    try:
        first, second = iter(stage.dataset), iter(stage.dataset)
        return _compare_streams(first, second, count, deadline)
    except Exception:  # noqa: BLE001 - a prefix that cannot run gives no evidence
        return UNKNOWN


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


def _compare_streams(first: Iterator[Any], second: Iterator[Any], count: int,
                     deadline: float) -> str:
    for compared in range(count):
        if compared and time.perf_counter() >= deadline:
            return UNKNOWN
        a, b = next(first, None), next(second, None)
        if a is None or b is None:
            return SAME if a is None and b is None else DIFFER
        if not _same_element(a, b):
            return DIFFER
    return SAME


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
