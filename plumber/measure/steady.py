"""The steady window of an iterator: from its first delivered step to its last.

(For a pool of workers, from the last of the batches asked for at its start
to as many before its end: :class:`SteadyWindow`.)

An iterator's first step pays the pipeline's start-up (threads, buffers,
function tracing, worker processes); the rate the model predicts is the one
that follows. The hooks mark each step an iterator delivers; the window
between its first and last mark gives the steps, the seconds, the time the
loop waited for data, and the CPU time of this process
(``time.process_time()``: every thread of this process, not DataLoader
worker processes) that the analysis compares the model with
(``ConsumerStats.steady_steps``, ``steady_s``, ``steady_wait_s``, ``cpu_s``).

Each mark also reads ``time.monotonic()``, the resource sampler's clock, so
the window can be placed on the samples' time axis
(``ConsumerStats.steady_spans``): the report shades it on its resource charts
and states their means over it, whatever clock the hook times steps with.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plumber.records.profile import SteadySpan


@dataclass(frozen=True)
class Mark:
    """One mark: the hook's clock, steps delivered, the loop's wait so far, process CPU,
    ``time.monotonic()``."""

    at: float
    steps: int
    waited: float
    cpu: float
    monotonic: float


@dataclass
class SteadyWindow:
    """The marks that open and close one iterator's steady window.

    ``opens_at`` is the step whose delivery opens the window (:meth:`step`):
    the first, unless the pipeline asks for more at its start than one step.
    A DataLoader's workers are handed ``num_workers * prefetch_factor``
    batches at once, so those arrive in a burst made during the start-up;
    counting them as steady made 16 workers on 2 cores, whose 24-batch epoch
    was all asked for at the start, look 30 times faster than they ran.
    The window closes as many steps before the iterator's last as it opened
    after its first: when it opens, that many batches are in the workers'
    hands, part made; at its close as many are again, while the last ones
    come from workers that get nothing new and finish them in a burst (an
    epoch of 45 batches for 16 workers measured 630/s where it ran at 17/s).
    """

    opens_at: int = 1
    delivered: int = 0
    first: Mark | None = None
    recent: deque[Mark] = field(default_factory=deque)

    def mark(self, steps: int, now: float, waited: float) -> None:
        """The iterator has delivered ``steps`` steps at ``now`` (one clock per window),
        its loop having waited ``waited`` seconds for data in all."""
        mark = Mark(now, steps, waited, time.process_time(), time.monotonic())
        if self.first is None:
            self.first = mark
        self.recent.append(mark)
        while len(self.recent) > self.opens_at:
            self.recent.popleft()

    def step(self, now: float, waited: float) -> None:
        """One more step delivered at ``now``, ``waited`` seconds of waiting for data in all
        so far; marked once the window is open."""
        self.delivered += 1
        if self.delivered >= self.opens_at:
            self.mark(self.delivered, now, waited)

    @property
    def last(self) -> Mark | None:
        """The mark that closes the window: ``opens_at - 1`` marks before the latest."""
        return self.recent[0] if self.recent else None

    @property
    def steps(self) -> int:
        """Steps delivered between the marks that open and close the window."""
        if self.first is None or self.last is None:
            return 0
        return max(self.last.steps - self.first.steps, 0)


@dataclass(frozen=True)
class Steady:
    """Steps, seconds, seconds waited for data and process CPU seconds over the steady
    windows of a pipeline.

    ``spans`` places each window on the resource samples' clock; empty when
    that clock's origin was not given.
    """

    steps: int
    seconds: float
    wait_s: float
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
    held = [(w.first, w.last, w.steps) for w in windows if w.steps > 0]
    if not held:
        return Steady(steps=0, seconds=0.0, wait_s=0.0, cpu_s=0.0)
    placed = () if clock_origin is None else tuple(
        SteadySpan(
            start_s=first.monotonic - clock_origin,
            end_s=last.monotonic - clock_origin,
            steps=steps,
        )
        for first, last, steps in sorted(held, key=lambda h: h[0].monotonic)
    )
    return Steady(
        steps=sum(steps for _, _, steps in held),
        seconds=sum(last.at - first.at for first, last, _ in held),
        wait_s=sum(last.waited - first.waited for first, last, _ in held),
        cpu_s=sum(last.cpu - first.cpu for first, last, _ in held),
        spans=placed,
    )


def median_step(steps: Sequence[float]) -> float | None:
    """The median of the timed step times (``ConsumerStats.step_median_s``); None without any."""
    return statistics.median(steps) if steps else None
