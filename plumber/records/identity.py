"""Stable identities of pipeline stages across re-runs of a script.

A stage is named by where the user built it and what it is: source file,
line, kind, and its occurrence (how many stages of that kind that line had
built before it). The profiling run and a later run that applies a plan
count stages the same way, so a plan written from one finds its stages in
the other. Stages plumber builds itself are built with counting suppressed.
Framework-neutral: the tf.data and torch adapters both count with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

StageKey = tuple[str, int, str]


class StageCounter:
    """Counts the stages built per (file, line, kind), in build order."""

    def __init__(self) -> None:
        self._counts: dict[StageKey, int] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def peek(self, key: StageKey) -> int:
        """The occurrence the next stage built under ``key`` will get."""
        return self._counts.get(key, 0)

    def take(self, key: StageKey) -> int | None:
        """Number one more stage under ``key``; None while counting is suppressed."""
        if getattr(self._local, "suppressed", False):
            return None
        with self._lock:
            occurrence = self._counts.get(key, 0)
            self._counts[key] = occurrence + 1
        return occurrence

    def suppressed_here(self) -> bool:
        """Whether this thread is building stages that plumber adds (counting suppressed)."""
        return bool(getattr(self._local, "suppressed", False))

    @contextmanager
    def suppressed(self) -> Iterator[None]:
        """Build stages that plumber adds without counting them."""
        self._local.suppressed = True
        try:
            yield
        finally:
            self._local.suppressed = False
