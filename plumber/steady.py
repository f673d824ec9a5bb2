"""The steady window of an iterator: from its first delivered step to its last.

An iterator's first step pays the pipeline's start-up (threads, buffers,
function tracing, worker processes); the rate the model predicts is the one
that follows. The hooks mark each step an iterator delivers; the window
between its first and last mark gives the steps, the seconds and the CPU
time of this process (``time.process_time()``: every thread of this process,
not DataLoader worker processes) that the analysis compares the model with
(``ConsumerStats.steady_steps``, ``steady_s``, ``cpu_s``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class SteadyWindow:
    """First and last mark of one iterator: (clock, steps delivered, process CPU)."""

    first_at: float | None = None
    first_steps: int = 0
    first_cpu: float = 0.0
    last_at: float = 0.0
    last_steps: int = 0
    last_cpu: float = 0.0

    def mark(self, steps: int, now: float) -> None:
        """The iterator has delivered ``steps`` steps at ``now`` (one clock per window)."""
        cpu = time.process_time()
        if self.first_at is None:
            self.first_at, self.first_steps, self.first_cpu = now, steps, cpu
        self.last_at, self.last_steps, self.last_cpu = now, steps, cpu

    def step(self, now: float) -> None:
        """One more step delivered at ``now``."""
        self.mark(self.last_steps + 1, now)

    @property
    def steps(self) -> int:
        """Steps delivered after the first mark."""
        return self.last_steps - self.first_steps if self.first_at is not None else 0


@dataclass(frozen=True)
class Steady:
    """Steps, seconds and process CPU seconds over the steady windows of a pipeline."""

    steps: int
    seconds: float
    cpu_s: float


def steady_of(windows: Iterable[SteadyWindow]) -> Steady | None:
    """The windows' totals; None when no window holds a step after its first."""
    spans = [w for w in windows if w.steps > 0 and w.first_at is not None]
    if not spans:
        return None
    return Steady(
        steps=sum(w.steps for w in spans),
        seconds=sum(w.last_at - w.first_at for w in spans if w.first_at is not None),
        cpu_s=sum(w.last_cpu - w.first_cpu for w in spans),
    )
