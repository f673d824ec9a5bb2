"""The steady window of an iterator: from its first delivered step to its last.

An iterator's first step pays the pipeline's start-up (threads, buffers,
function tracing, worker processes); the rate the model predicts is the one
that follows. The hooks mark each step an iterator delivers; the window
between its first and last mark gives the steps, the seconds and the CPU
time of this process (``time.process_time()``: every thread of this process,
not DataLoader worker processes) that the analysis compares the model with
(``ConsumerStats.steady_steps``, ``steady_s``, ``cpu_s``).

Each mark also reads ``time.monotonic()``, the resource sampler's clock, so
the window can be placed on the samples' time axis
(``ConsumerStats.steady_spans``): the report shades it on its resource charts
and states their means over it, whatever clock the hook times steps with.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from plumber.records.profile import SteadySpan


@dataclass
class SteadyWindow:
    """First and last mark of one iterator: (clock, steps delivered, process CPU, monotonic).

    ``opens_at`` is the step whose delivery opens the window (:meth:`step`):
    the first, unless the pipeline asks for more at its start than one step.
    A DataLoader's workers are handed ``num_workers * prefetch_factor``
    batches at once, so those arrive in a burst made during the start-up;
    counting them as steady made 16 workers on 2 cores, whose 24-batch epoch
    was all asked for at the start, look 30 times faster than they ran.
    """

    opens_at: int = 1
    delivered: int = 0
    first_at: float | None = None
    first_steps: int = 0
    first_cpu: float = 0.0
    first_monotonic: float = 0.0
    last_at: float = 0.0
    last_steps: int = 0
    last_cpu: float = 0.0
    last_monotonic: float = 0.0

    def mark(self, steps: int, now: float) -> None:
        """The iterator has delivered ``steps`` steps at ``now`` (one clock per window)."""
        cpu, monotonic = time.process_time(), time.monotonic()
        if self.first_at is None:
            self.first_at, self.first_steps, self.first_cpu = now, steps, cpu
            self.first_monotonic = monotonic
        self.last_at, self.last_steps, self.last_cpu = now, steps, cpu
        self.last_monotonic = monotonic

    def step(self, now: float) -> None:
        """One more step delivered at ``now``; marked once the window is open."""
        self.delivered += 1
        if self.delivered >= self.opens_at:
            self.mark(self.delivered, now)

    @property
    def steps(self) -> int:
        """Steps delivered after the first mark."""
        return self.last_steps - self.first_steps if self.first_at is not None else 0


@dataclass(frozen=True)
class Steady:
    """Steps, seconds and process CPU seconds over the steady windows of a pipeline.

    ``spans`` places each window on the resource samples' clock; empty when
    that clock's origin was not given.
    """

    steps: int
    seconds: float
    cpu_s: float
    spans: tuple[SteadySpan, ...] = ()


def steady_of(
    windows: Iterable[SteadyWindow], clock_origin: float | None = None
) -> Steady | None:
    """The windows' totals; None when there is no window at all.

    Windows none of which holds a step after it opened give zero steps in
    zero seconds: the iterators ran, but never past their start-up, which
    the analysis reports as a run too short for a steady state.

    ``clock_origin`` is the ``time.monotonic()`` reading at the resource
    samples' time 0 (:attr:`plumber.measure.sampler.ResourceSampler.clock_origin`);
    with it each window becomes a :class:`~plumber.records.profile.SteadySpan` in
    seconds on that axis, in the order the windows opened.
    """
    windows = list(windows)
    if not windows:
        return None
    held = [w for w in windows if w.steps > 0 and w.first_at is not None]
    if not held:
        return Steady(steps=0, seconds=0.0, cpu_s=0.0)
    placed = () if clock_origin is None else tuple(
        SteadySpan(
            start_s=w.first_monotonic - clock_origin,
            end_s=w.last_monotonic - clock_origin,
            steps=w.steps,
        )
        for w in sorted(held, key=lambda w: w.first_monotonic)
    )
    return Steady(
        steps=sum(w.steps for w in held),
        seconds=sum(w.last_at - w.first_at for w in held if w.first_at is not None),
        cpu_s=sum(w.last_cpu - w.first_cpu for w in held),
        spans=placed,
    )
