"""CPU seconds and run-queue waits per thread group, from ``/proc/self/task`` (Linux).

Threads are grouped by OS-level name and role (:data:`plumber.records.profile.THREAD_ROLES`):
the process's main thread, plumber's own threads (named ``plumber-*`` with
:func:`name_os_thread`: the profiler's overhead), threads that kept the name
they inherited from the process, and threads with a name of their own. On TF
2.21 tf.data's worker threads carry no name: they inherit the process's
(``plumber`` under the console script), which is why plumber names its own
threads and why inherited names count as the frameworks' threads, never as
plumber's. Only OS-level names count: Python's ``threading`` names are
invisible in ``/proc``, and the kernel keeps at most 15 bytes of a name.

Besides CPU time, each thread's ``schedstat`` gives the time it was runnable
but waiting on a run queue for a core: what oversubscription (more runnable
threads than cores) costs, told apart from waiting for I/O.

A thread that exits takes its counters with it, so :meth:`ThreadCpuTracker.poll`
may be called periodically (the resource sampler does) to see short-lived
threads before they go; the largest cumulative value seen per thread is kept.
Where ``/proc`` is missing (not Linux) the tracker reports nothing.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass

from plumber.records.profile import ThreadCpu

_TASKS = "/proc/self/task"
_THREAD_SELF_SCHEDSTAT = "/proc/thread-self/schedstat"
_PR_SET_NAME = 15

#: The OS-name prefix of every thread plumber starts (see :func:`name_os_thread`).
PLUMBER_PREFIX = "plumber-"

#: One thread: (thread id, start time in ticks). The start time tells a
#: thread apart from a later one the kernel gave the same id.
_ThreadKey = tuple[str, int]


@dataclass(frozen=True)
class _Sample:
    """One thread at one snapshot: its name and cumulative counters."""

    name: str
    cpu_s: float
    runqueue_s: float | None


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


def parse_schedstat(text: bytes) -> tuple[float, float] | None:
    """(seconds on CPU, seconds runnable waiting for a core) from one ``schedstat`` line.

    The line holds three numbers: nanoseconds on a CPU, nanoseconds spent
    runnable on a run queue without a core, and the number of timeslices.
    """
    fields = text.split()
    try:
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (IndexError, ValueError):
        return None


def thread_runqueue_s() -> float | None:
    """Seconds the calling thread has waited on a run queue so far (None without ``/proc``)."""
    stat = _read_stat(_THREAD_SELF_SCHEDSTAT)
    parsed = parse_schedstat(stat) if stat else None
    return parsed[1] if parsed is not None else None


class ThreadCpuTracker:
    """CPU seconds and run-queue waits per thread group between :meth:`start` and :meth:`stop`.

    ``main_tid`` is the id of the process's main thread (the process id):
    every name it carries during the run is a name other threads inherit.
    Safe to :meth:`poll` from another thread (the sampler) while the owner
    calls :meth:`stop`.
    """

    def __init__(
        self, tasks_dir: str = _TASKS, ticks_per_s: float | None = None,
        main_tid: str | None = None,
    ) -> None:
        self.tasks_dir = tasks_dir
        self.main_tid = main_tid if main_tid is not None else str(os.getpid())
        self._ticks_per_s = ticks_per_s or _clock_ticks_per_s()
        self._baseline: dict[_ThreadKey, _Sample] = {}
        self._latest: dict[_ThreadKey, _Sample] = {}
        self._main_names: set[str] = set()
        self._lock = threading.Lock()

    def _snapshot(self) -> dict[_ThreadKey, _Sample]:
        try:
            tids = os.listdir(self.tasks_dir)
        except OSError:
            return {}
        snapshot = {}
        for tid in tids:
            stat = _read_stat(f"{self.tasks_dir}/{tid}/stat")
            parsed = parse_task_stat(stat, self._ticks_per_s) if stat else None
            if parsed is None:
                continue
            name, started, cpu_s = parsed
            sched = _read_stat(f"{self.tasks_dir}/{tid}/schedstat")
            queued = parse_schedstat(sched) if sched else None
            snapshot[(tid, started)] = _Sample(name, cpu_s, queued[1] if queued else None)
        return snapshot

    def _remember_main_names(self, snapshot: dict[_ThreadKey, _Sample]) -> None:
        for (tid, _), sample in snapshot.items():
            if tid == self.main_tid:
                self._main_names.add(sample.name)

    def start(self) -> None:
        """Record every live thread's counters so far, to be subtracted at :meth:`stop`."""
        snapshot = self._snapshot()
        with self._lock:
            self._baseline = dict(snapshot)
            self._latest = dict(snapshot)
            self._main_names = set()
            self._remember_main_names(snapshot)

    def poll(self) -> None:
        """Take an intermediate snapshot so threads that exit later are still counted."""
        snapshot = self._snapshot()
        with self._lock:
            self._remember_main_names(snapshot)
            for key, sample in snapshot.items():
                previous = self._latest.get(key)
                # Keep the newest name (threads often rename themselves
                # after starting) with the largest counter seen.
                if previous is None or sample.cpu_s >= previous.cpu_s:
                    self._latest[key] = sample

    def stop(self) -> tuple[ThreadCpu, ...]:
        """CPU seconds and run-queue waits per thread group since :meth:`start`, largest first.

        Threads born during the run count fully, idle ones included (their
        number shows pool sizes); threads that predate the run and stayed
        idle are left out. A group's run-queue wait is ``None`` when a
        thread's ``schedstat`` could not be read.
        """
        self.poll()
        cpu: dict[tuple[str, str], float] = defaultdict(float)
        queued: dict[tuple[str, str], float | None] = defaultdict(float)
        count: dict[tuple[str, str], int] = defaultdict(int)
        with self._lock:
            for key, sample in self._latest.items():
                before = self._baseline.get(key)
                used = sample.cpu_s - (before.cpu_s if before else 0.0)
                if used <= 0 and before is not None:
                    continue
                group = (self._role(key[0], sample.name), sample.name)
                cpu[group] += used
                count[group] += 1
                waited = _delta(sample.runqueue_s, before.runqueue_s if before else 0.0)
                total = queued[group]
                queued[group] = None if total is None or waited is None else total + waited
        groups = [
            ThreadCpu(name, count[(role, name)], seconds, role, queued[(role, name)])
            for (role, name), seconds in cpu.items()
        ]
        return tuple(sorted(groups, key=lambda g: (-g.cpu_time_s, g.name, g.role)))

    def _role(self, tid: str, name: str) -> str:
        """The role of a thread: see :data:`plumber.records.profile.THREAD_ROLES`."""
        if tid == self.main_tid:
            return "main"
        if name.startswith(PLUMBER_PREFIX):
            return "profiler"
        if name in self._main_names:
            return "inherited"
        return "named"


def _delta(after: float | None, before: float | None) -> float | None:
    if after is None or before is None:
        return None
    return max(after - before, 0.0)


def name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux), so its CPU shows apart.

    Python's ``threading`` names are not visible in ``/proc``; plumber names
    its own threads (``plumber-*``, :data:`PLUMBER_PREFIX`) so a profile shows
    what the profiler itself cost. The kernel truncates the name to 15 bytes.
    Elsewhere this does nothing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass
