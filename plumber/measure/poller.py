"""A named daemon thread that calls a function at a fixed interval until it is stopped.

The tf.data and the DataLoader hooks both poll while a script runs (TF's
autotuning model, the run's bounds): this is the one way they start, name
(also at OS level, so its CPU shows as plumber's) and stop that thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from plumber.measure.threadcpu import name_os_thread


class Poller:
    """Calls ``tick`` every ``interval_s`` seconds on a daemon thread named ``name``."""

    def __init__(self, name: str, interval_s: float, tick: Callable[[], None]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """No more ticks; waits up to ``timeout_s`` for one under way to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        name_os_thread(self.name)
        while not self._stop.wait(self.interval_s):
            self.tick()
