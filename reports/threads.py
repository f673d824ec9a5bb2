"""The "CPU by thread group" table: what each group of threads is, and what plumber cost.

Thread groups come from the main process (:mod:`plumber.measure.threadcpu`), each with
a role: the script's main thread, plumber's own threads (the profiler's
overhead), threads that kept the name they inherited from the process (the
frameworks' pools: TensorFlow's tf.data threads carry no name of their own,
so under the ``plumber`` console script they read "plumber" and must not be
labelled as plumber's), and threads named by their owners. Profiles written
before roles were recorded show the bare names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plumber.records.profile import ThreadCpu
from plumber.reports import format as fmt


@dataclass(frozen=True)
class ThreadRow:
    """One row of the table: what the group is, its threads, CPU and wait for a core."""

    label: str
    name: str
    count: str
    cpu: str
    core_wait: str


def label(group: ThreadCpu) -> str:
    """What a thread group is, in words a reader of the report understands."""
    if group.role == "main":
        return "main thread (the script's Python)"
    if group.role == "profiler":
        return "plumber (profiler overhead)"
    if group.role == "inherited":
        return "framework / other threads of the process"
    return "thread named by its owner" if group.role == "named" else fmt.MISSING


def thread_rows(groups: Sequence[ThreadCpu]) -> tuple[ThreadRow, ...]:
    """The table's rows, most CPU first."""
    return tuple(
        ThreadRow(label(g), g.name, fmt.count(g.threads), fmt.seconds(g.cpu_time_s),
                  fmt.seconds(g.runqueue_s))
        for g in sorted(groups, key=lambda g: -g.cpu_time_s)
    )


def profiler_overhead(groups: Sequence[ThreadCpu]) -> str:
    """A sentence with plumber's own CPU in the main process, or "" when roles are unknown."""
    if not any(g.role for g in groups):
        return ""
    own = [g for g in groups if g.role == "profiler"]
    total = sum(g.cpu_time_s for g in groups)
    cpu = sum(g.cpu_time_s for g in own)
    share = f" ({fmt.fraction(cpu / total)} of the CPU its threads used)" if total > 0 else ""
    threads = sum(g.threads for g in own)
    return (
        f"Profiler overhead: plumber's own {threads} thread{'s' if threads != 1 else ''} "
        f"in this process used {fmt.seconds(cpu)} of CPU{share}. Threads that kept the "
        f"process's name are the frameworks' (TensorFlow's tf.data pools carry no name of "
        f"their own), not plumber's."
    )
