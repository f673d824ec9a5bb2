"""A named daemon thread that calls a function at a fixed rate until it is stopped.

The resource sampler, the tf.data hooks and the DataLoader hooks all poll
while a script runs (the machine's counters, TF's autotuning model, the
run's bounds): this is the one way they start, schedule, name (also at OS
level, so its CPU shows as plumber's) and stop that thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from plumber.measure.threadcpu import name_os_thread


class Poller:
    """Calls ``tick`` every ``interval_s`` seconds on a daemon thread named ``name``.

    The schedule is fixed-rate, so the cost of a tick does not stretch the
    interval. After a stall (suspend, slow ``/proc``, a thread starved of
    the GIL) the late tick covers the stall and the next comes one interval
    after it: a tick taken at once would measure a millisecond, whose CPU
    percentages are noise that a mean over the samples would count like any
    other. ``interval_s`` may be changed while the thread runs (the sampler
    doubles it when it thins its samples); the next wait uses the new value.
    """

    def __init__(self, name: str, interval_s: float, tick: Callable[[], None]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = time.monotonic()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def start(self, origin: float | None = None) -> None:
        """Start ticking, the first tick one interval after ``origin`` (monotonic; default now)."""
        self._origin = time.monotonic() if origin is None else origin
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """No more ticks; waits up to ``timeout_s`` for one under way to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        name_os_thread(self.name)
        deadline = self._origin
        while True:
            now = time.monotonic()
            deadline += self.interval_s
            if deadline < now:
                deadline = now + self.interval_s
            if self._stop.wait(deadline - time.monotonic()):
                return
            self.tick()
