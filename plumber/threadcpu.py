"""CPU seconds per thread name, from ``/proc/self/task`` (Linux).

TensorFlow names its threads (``tf_data_private``, ``tf_Compute``...), so
grouping per-thread CPU by name tells input-pipeline work from the training
step and from Python. Only OS-level names count: Python's ``threading`` names
are invisible in ``/proc`` (see :func:`name_os_thread`), and the kernel keeps
at most 15 bytes of a name.

A thread that exits takes its counters with it, so :meth:`ThreadCpuTracker.poll`
may be called periodically (the resource sampler does) to see short-lived
threads before they go; the largest cumulative value seen per thread is kept.
Where ``/proc`` is missing (not Linux) the tracker reports nothing.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict

from plumber.record import ThreadCpu

_TASKS = "/proc/self/task"
_PR_SET_NAME = 15

#: One thread: (thread id, start time in ticks). The start time tells a
#: thread apart from a later one the kernel gave the same id.
_ThreadKey = tuple[str, int]


def _clock_ticks_per_s() -> float:
    """Units of the stat CPU counters (USER_HZ, almost always 100)."""
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


def _read_stat(path: str) -> bytes | None:
    try:
        with open(path, "rb") as stat:
            return stat.read()
    except OSError:  # the thread exited between listing and reading
        return None


def parse_task_stat(stat: bytes, ticks_per_s: float) -> tuple[str, int, float] | None:
    """(name, start time in ticks, CPU seconds) from one ``/proc/.../stat`` line.

    The name is the comm field, in parentheses; it may itself hold spaces
    and parentheses, so the numeric fields are split after the last ``)``.
    Reading the name from ``stat`` instead of ``comm`` halves the file reads
    and takes name and counters from one consistent read.
    """
    open_paren, close_paren = stat.find(b"("), stat.rfind(b")")
    if open_paren < 0 or close_paren < open_paren:
        return None
    fields = stat[close_paren + 2 :].split()
    try:
        # Fields 14, 15 and 22 of proc_pid_stat(5); fields[0] is field 3.
        utime, stime, started = int(fields[11]), int(fields[12]), int(fields[19])
    except (IndexError, ValueError):
        return None
    name = stat[open_paren + 1 : close_paren].decode("utf-8", "replace")
    return name, started, (utime + stime) / ticks_per_s


class ThreadCpuTracker:
    """CPU seconds per thread-name group between :meth:`start` and :meth:`stop`.

    Safe to :meth:`poll` from another thread (the sampler) while the owner
    calls :meth:`stop`.
    """

    def __init__(self, tasks_dir: str = _TASKS, ticks_per_s: float | None = None) -> None:
        self.tasks_dir = tasks_dir
        self._ticks_per_s = ticks_per_s or _clock_ticks_per_s()
        self._baseline: dict[_ThreadKey, float] = {}
        self._latest: dict[_ThreadKey, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _snapshot(self) -> dict[_ThreadKey, tuple[str, float]]:
        try:
            tids = os.listdir(self.tasks_dir)
        except OSError:
            return {}
        snapshot = {}
        for tid in tids:
            stat = _read_stat(f"{self.tasks_dir}/{tid}/stat")
            parsed = parse_task_stat(stat, self._ticks_per_s) if stat else None
            if parsed is not None:
                name, started, cpu_s = parsed
                snapshot[(tid, started)] = (name, cpu_s)
        return snapshot

    def start(self) -> None:
        """Record every live thread's CPU so far, to be subtracted at :meth:`stop`."""
        snapshot = self._snapshot()
        with self._lock:
            self._baseline = {key: cpu_s for key, (_, cpu_s) in snapshot.items()}
            self._latest = dict(snapshot)

    def poll(self) -> None:
        """Take an intermediate snapshot so threads that exit later are still counted."""
        snapshot = self._snapshot()
        with self._lock:
            for key, (name, cpu_s) in snapshot.items():
                previous = self._latest.get(key)
                # Keep the newest name (threads often rename themselves
                # after starting) with the largest counter seen.
                if previous is None or cpu_s >= previous[1]:
                    self._latest[key] = (name, cpu_s)

    def stop(self) -> tuple[ThreadCpu, ...]:
        """CPU seconds per thread-name group since :meth:`start`, largest first.

        Threads born during the run count fully, idle ones included (their
        number shows pool sizes); threads that predate the run and stayed
        idle are left out.
        """
        self.poll()
        cpu_by_name: dict[str, float] = defaultdict(float)
        count_by_name: dict[str, int] = defaultdict(int)
        with self._lock:
            for key, (name, cpu_s) in self._latest.items():
                before = self._baseline.get(key)
                used = cpu_s - (before or 0.0)
                if used > 0 or before is None:
                    cpu_by_name[name] += used
                    count_by_name[name] += 1
        groups = [ThreadCpu(name, count_by_name[name], cpu) for name, cpu in cpu_by_name.items()]
        return tuple(sorted(groups, key=lambda g: (-g.cpu_time_s, g.name)))


def name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux), so its CPU shows apart.

    Python's ``threading`` names are not visible in ``/proc``; plumber names
    its own threads so a profile shows what the profiler itself cost. The
    kernel truncates the name to 15 bytes. Elsewhere this does nothing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass
