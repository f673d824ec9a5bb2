"""Per-stage CPU time by differential prefix runs (no trace, no patch).

Every dataset object in a pipeline is itself a runnable prefix. Iterating
prefix k alone for a short, fixed time and reading the process CPU clock
gives its CPU-seconds per element; scaled by the stage's visit ratio and
differenced against its inputs' prefixes, that is the stage's own CPU demand
per root element. TF's model gives each stage's wall time; CPU far below wall
marks a stage that waits (I/O, latency) rather than computes.

The probe re-reads data, so it runs after the script, bounded by a total
time budget, and the profile records that it ran. The per-element Python
overhead of ``next()`` is calibrated on a trivial dataset and subtracted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plumber.tf.written import WrittenStage

_SKIP_KINDS = frozenset({"config"})


@dataclass(frozen=True)
class PrefixCost:
    """CPU and wall seconds per output element of one prefix, steady state."""

    cpu_per_element_s: float
    wall_per_element_s: float
    elements: int


def measure_prefixes(
    stages: Sequence[WrittenStage],
    budget_s: float,
    on_elements: Callable[[WrittenStage, list[Any]], None] | None = None,
    keep: int = 0,
) -> dict[str, PrefixCost]:
    """Measure each stage's prefix for about ``budget_s / len(stages)`` seconds.

    Stages whose prefix yields no element in its slice (a huge shuffle
    buffer, a slow remote read) are left out: their CPU stays unmeasured.
    With ``on_elements``, the first ``keep`` elements each prefix yielded are
    handed to it once the prefix's slice is over (outside the measurement),
    so what else needs a stage's elements does not read the prefix again.
    """
    runnable = [s for s in stages if s.kind not in _SKIP_KINDS]
    if not runnable or budget_s <= 0:
        return {}
    overhead = _next_overhead_s()
    slice_s = max(0.1, budget_s / len(runnable))
    costs: dict[str, PrefixCost] = {}
    for stage in runnable:
        kept: list[Any] = []
        cost = _run_prefix(stage.dataset, slice_s, overhead, kept, keep)
        if cost is not None:
            costs[stage.id] = cost
        if kept and on_elements is not None:
            on_elements(stage, kept)
    return costs


def _run_prefix(dataset: Any, slice_s: float, overhead_s: float, kept: list[Any],
                keep: int) -> PrefixCost | None:
    """The prefix's cost per element; its first ``keep`` elements go into ``kept``."""
    deadline = time.perf_counter() + slice_s
    try:
        iterator = iter(dataset)
        element = next(iterator)  # start-up (buffer fills, file opens) is not steady state
    except Exception:  # noqa: BLE001 - an empty or failing prefix is just unmeasured
        return None
    if keep:
        kept.append(element)
    cpu0, wall0, count = time.process_time(), time.perf_counter(), 0
    try:
        while time.perf_counter() < deadline or count < 2:
            element = next(iterator)
            count += 1
            if len(kept) < keep:
                kept.append(element)
            if time.perf_counter() > deadline + slice_s:
                break
    except StopIteration:
        pass
    except Exception:  # noqa: BLE001
        return None
    if count == 0:
        return None
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    return PrefixCost(
        cpu_per_element_s=max(cpu / count - overhead_s, 0.0),
        wall_per_element_s=wall / count,
        elements=count,
    )


def _next_overhead_s() -> float:
    """CPU seconds one eager ``next()`` costs on a dataset that does nothing."""
    import tensorflow as tf

    iterator = iter(tf.data.Dataset.range(1 << 30))
    next(iterator)
    cpu0, count = time.process_time(), 0
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        next(iterator)
        count += 1
    return (time.process_time() - cpu0) / max(count, 1)


def own_cpu_per_root(
    stage: WrittenStage,
    costs: dict[str, PrefixCost],
    visit_ratio: dict[str, float],
) -> float | None:
    """CPU seconds stage ``stage`` itself spends per root element.

    prefix(k) per root element = V_k x c_k; the stage's own share is that
    minus the same quantity of each of its inputs (clamped at zero: the
    difference of two noisy measurements can dip below).
    """
    cost = costs.get(stage.id)
    ratio = visit_ratio.get(stage.id)
    if cost is None or ratio is None:
        return None
    total = ratio * cost.cpu_per_element_s
    for child in _measured_inputs(stage, visit_ratio):
        child_cost, child_ratio = costs.get(child.id), visit_ratio.get(child.id)
        if child_cost is None or child_ratio is None:
            return None
        total -= child_ratio * child_cost.cpu_per_element_s
    return max(total, 0.0)


def _measured_inputs(stage: WrittenStage, visit_ratio: dict[str, float]) -> list[WrittenStage]:
    """The nearest inputs that ran as stages, looking through ones that did not."""
    found: list[WrittenStage] = []
    for child in stage.inputs:
        if child.kind in _SKIP_KINDS or child.id not in visit_ratio:
            found.extend(_measured_inputs(child, visit_ratio))
        else:
            found.append(child)
    return found
