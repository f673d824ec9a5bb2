"""Prefetch depth from how much the producer's and the consumer's rates vary.

A prefetch buffer lets the pipeline (the producer) run ahead of the training
step (the consumer). Its depth only matters when the producer is faster on
average: a slower producer empties any buffer, and then depth buys nothing
but memory. When it is faster, the buffer must absorb the bursts in which it
falls behind for a while (a slow element, a slow file, a step that was
quick).

The queueing argument. Per consumer step ``i`` the producer gains the slack
``s_i = C_i - P_i`` seconds, where ``C_i`` is the step time (mean ``T_c``,
standard deviation ``sd_c``) and ``P_i`` the time the producer takes for one
root element (mean ``T_p``, standard deviation ``sd_p``). How far the
producer is behind, ``W``, follows Lindley's recursion
``W' = max(0, W - s_i)``: it is the waiting time of a G/G/1 queue whose
slack has mean ``d = T_c - T_p > 0`` and variance ``v = sd_c^2 + sd_p^2``
(independent steps and elements). The diffusion (Kingman) approximation
gives ``P(W > x) ~ exp(-2 d x / v)``. A buffer holding ``B`` elements covers
a deficit of ``B T_c`` seconds (the consumer draws one per step), so the
consumer stalls with probability about ``exp(-2 d B T_c / v)``, and the
depth for a stall probability ``eps`` is::

    B = ceil(v ln(1 / eps) / (2 d T_c))

It grows as the producer's lead ``d`` shrinks and as either side varies
more. It is at least two (one element ready while the next is produced, so
the producer never idles waiting for space), at most :data:`MAX_DEPTH`,
and never more elements than the memory budget holds: the budget is a hard
limit.

From a profile: ``T_c`` and ``sd_c`` are the consumer's mean step time and
``ConsumerStats.step_sd_s``; ``T_p`` is one over the producer's rate (the
caller's, e.g. the tuned pipeline's predicted rate); ``sd_p`` is the
standard deviation of the consumer's per-step wait, ``wait_sd_s``. That is
the producer's own spread when the pipeline ran without overlap (each wait
is one element's production), and an overestimate by up to ``sd_c`` when it
overlapped with the step: the depth errs deep, which costs memory only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plumber.records.profile import Pipeline

#: The stall probability per step the depth is sized for.
STALL_PROBABILITY = 0.01

#: Never fewer: one element ready while the next is produced.
MIN_DEPTH = 2

#: Never more: beyond this the producer is barely faster and the model's
#: approximation, not the buffer, decides.
MAX_DEPTH = 64


@dataclass(frozen=True)
class PrefetchDepth:
    """A prefetch depth, why, and the stall probability per step the model gives it.

    ``stall_probability`` is None when the producer is not faster than the
    consumer (the buffer then runs empty whatever its depth).
    """

    depth: int
    reason: str
    stall_probability: float | None


def prefetch_depth(
    producer_interval_s: float,
    producer_sd_s: float,
    consumer_step_s: float,
    consumer_sd_s: float,
    bytes_per_element: float | None = None,
    memory_budget_bytes: float | None = None,
    stall_probability: float = STALL_PROBABILITY,
) -> PrefetchDepth:
    """The depth that keeps the consumer's stalls below ``stall_probability`` per step.

    Times in seconds per root element; ``bytes_per_element`` and
    ``memory_budget_bytes`` cap the depth when both are known (to 0 when
    not one element fits: then no prefetch may be added).
    """
    cap, capped_by = _cap(bytes_per_element, memory_budget_bytes)
    lead = consumer_step_s - producer_interval_s
    variance = producer_sd_s**2 + consumer_sd_s**2
    if not lead > 0:
        depth = min(MIN_DEPTH, cap)
        return PrefetchDepth(
            depth,
            f"the pipeline ({_ms(producer_interval_s)} per element) is not faster than the "
            f"step ({_ms(consumer_step_s)}): any buffer runs empty, so a depth of {depth} "
            f"only overlaps the two" + (capped_by if depth < MIN_DEPTH else ""),
            None,
        )
    needed = variance * math.log(1 / stall_probability) / (2 * lead * consumer_step_s)
    depth, why = max(MIN_DEPTH, math.ceil(needed - 1e-9)), ""
    if depth > MAX_DEPTH:
        depth, why = MAX_DEPTH, f", capped at {MAX_DEPTH}"
    if depth > cap:
        depth, why = cap, capped_by
    stall = math.exp(-2 * lead * depth * consumer_step_s / variance) if variance > 0 else 0.0
    return PrefetchDepth(
        depth,
        f"the pipeline leads the step by {_ms(lead)} per element and together they vary "
        f"by {_ms(math.sqrt(variance))}: {depth} buffered elements absorb the bursts "
        f"(stalls on about {stall:.1%} of steps){why}",
        stall,
    )


def prefetch_depth_for(
    pipeline: Pipeline, producer_rate: float, memory_budget_bytes: float | None
) -> PrefetchDepth | None:
    """:func:`prefetch_depth` from a profiled pipeline, or None when it lacks the spreads.

    ``producer_rate`` is the root elements per second the pipeline can
    deliver (with the plan's other settings); the element size is the root
    stage's bytes produced per element.
    """
    consumer = pipeline.consumer
    if consumer is None or consumer.steps <= 0 or not producer_rate > 0:
        return None
    if consumer.wait_sd_s is None or consumer.step_sd_s is None:
        return None
    stats = pipeline.stage(pipeline.root).stats
    size = stats.bytes_produced / stats.elements if stats and stats.elements else None
    return prefetch_depth(
        producer_interval_s=1 / producer_rate,
        producer_sd_s=consumer.wait_sd_s,
        consumer_step_s=consumer.step_s / consumer.steps,
        consumer_sd_s=consumer.step_sd_s,
        bytes_per_element=size or None,
        memory_budget_bytes=memory_budget_bytes,
    )


def _cap(bytes_per_element: float | None, budget: float | None) -> tuple[int, str]:
    """The most elements the memory budget holds, and the phrase that says it limited them."""
    if not bytes_per_element or budget is None:
        return MAX_DEPTH, ""
    fits = max(int(budget // bytes_per_element), 0)
    return min(fits, MAX_DEPTH), f", limited to {fits} by the memory budget"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"
