"""CPU seconds per thread name, from ``/proc/self/task`` (Linux).

TensorFlow names its threads (``tf_data_private``, ``tf_Compute``...), so
grouping per-thread CPU by name tells input-pipeline work from the training
step and from Python. Threads that exit between snapshots would be lost, so
``poll()`` may be called periodically; the largest cumulative value seen per
thread id is kept.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from plumber.record import ThreadCpu

_TASKS = Path("/proc/self/task")


def _read_task(task: Path, ticks: float) -> tuple[str, float] | None:
    """(name, CPU seconds) of one thread, or None if it vanished mid-read."""
    try:
        name = (task / "comm").read_text().strip()
        stat = (task / "stat").read_text()
    except OSError:
        return None
    # The name in stat is parenthesised and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        utime, stime = int(fields[11]), int(fields[12])
    except (IndexError, ValueError):
        return None
    return name, (utime + stime) / ticks


class ThreadCpuTracker:
    """Track CPU per thread between ``start()`` and ``stop()``."""

    def __init__(self, tasks_dir: Path = _TASKS) -> None:
        self.tasks_dir = tasks_dir
        self._ticks = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._baseline: dict[str, float] = {}
        self._latest: dict[str, tuple[str, float]] = {}

    def _snapshot(self) -> dict[str, tuple[str, float]]:
        try:
            tasks = list(self.tasks_dir.iterdir())
        except OSError:
            return {}
        snapshot = {}
        for task in tasks:
            entry = _read_task(task, self._ticks)
            if entry is not None:
                snapshot[task.name] = entry
        return snapshot

    def start(self) -> None:
        self._baseline = {tid: cpu for tid, (_, cpu) in self._snapshot().items()}
        self._latest = {}

    def poll(self) -> None:
        """Take an intermediate snapshot so short-lived threads are counted."""
        for tid, (name, cpu) in self._snapshot().items():
            previous = self._latest.get(tid)
            if previous is None or cpu >= previous[1]:
                self._latest[tid] = (name, cpu)

    def stop(self) -> tuple[ThreadCpu, ...]:
        """CPU seconds per thread-name group since ``start()``, largest first."""
        self.poll()
        cpu_by_name: dict[str, float] = defaultdict(float)
        count_by_name: dict[str, int] = defaultdict(int)
        for tid, (name, cpu) in self._latest.items():
            used = cpu - self._baseline.get(tid, 0.0)
            if used > 0 or tid not in self._baseline:
                cpu_by_name[name] += max(used, 0.0)
                count_by_name[name] += 1
        groups = [ThreadCpu(name, count_by_name[name], cpu) for name, cpu in cpu_by_name.items()]
        return tuple(sorted(groups, key=lambda g: g.cpu_time_s, reverse=True))


def name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux), so its CPU shows apart.

    Python's ``threading`` names are not visible in ``/proc``; plumber names
    its own threads so a profile shows what the profiler itself cost.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
