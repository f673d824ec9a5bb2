"""Per-thread CPU accounting from /proc/self/task."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from plumber.measure.threadcpu import (
    ThreadCpuTracker,
    name_os_thread,
    parse_schedstat,
    parse_task_stat,
    thread_runqueue_s,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


def _stat_line(name: str, utime: int, stime: int, started: int = 1000) -> str:
    # Fields 3..22 of proc_pid_stat(5): state, ppid, ..., utime (14), stime (15), ... starttime.
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0",
              str(utime), str(stime), "0", "0", "20", "0", "1", "0", str(started)]
    return f"4242 ({name}) {' '.join(fields)} 0 0\n"


def _write_task(
    tasks: Path, tid: str, name: str, ticks: int, started: int = 1000,
    queued_ns: int | None = None,
) -> None:
    (tasks / tid).mkdir(parents=True, exist_ok=True)
    (tasks / tid / "stat").write_text(_stat_line(name, ticks, 0, started))
    if queued_ns is not None:
        (tasks / tid / "schedstat").write_text(f"{ticks * 10_000_000} {queued_ns} 42\n")


def test_stat_line_with_spaces_and_parentheses_in_the_name_is_parsed():
    stat = _stat_line("tf data) (x", utime=150, stime=50, started=77).encode()
    assert parse_task_stat(stat, ticks_per_s=100.0) == ("tf data) (x", 77, 2.0)


def test_truncated_stat_line_is_rejected():
    assert parse_task_stat(b"12 (name) S 1 2", 100.0) is None
    assert parse_task_stat(b"garbage", 100.0) is None


def test_cpu_is_counted_since_start_grouped_by_name_and_kept_after_a_thread_exits(tmp_path):
    # GIVEN a fake task directory: an old busy thread, an old idle one.
    tasks = tmp_path / "task"
    _write_task(tasks, "1", "python", ticks=500)
    _write_task(tasks, "2", "idle", ticks=300)
    tracker = ThreadCpuTracker(tasks_dir=str(tasks), ticks_per_s=100.0)
    tracker.start()
    # WHEN the old thread works, two workers appear, one is polled and then exits
    _write_task(tasks, "1", "python", ticks=550)
    _write_task(tasks, "3", "worker", ticks=200)
    _write_task(tasks, "4", "worker", ticks=100)
    tracker.poll()
    (tasks / "4" / "stat").unlink()
    (tasks / "4").rmdir()
    _write_task(tasks, "3", "worker", ticks=250)
    groups = tracker.stop()
    # THEN workers count fully (both of them), the old thread only its delta,
    # the idle one not at all, largest first.
    assert [(g.name, g.threads, g.cpu_time_s) for g in groups] == [
        ("worker", 2, 3.5),
        ("python", 1, 0.5),
    ]


def test_a_thread_id_reused_by_a_new_thread_counts_as_another_thread(tmp_path):
    tasks = tmp_path / "task"
    _write_task(tasks, "7", "old", ticks=900, started=10)
    tracker = ThreadCpuTracker(tasks_dir=str(tasks), ticks_per_s=100.0)
    tracker.start()
    _write_task(tasks, "7", "new", ticks=40, started=5000)
    groups = {g.name: g for g in tracker.stop()}
    assert groups["new"].cpu_time_s == pytest.approx(0.4)
    assert "old" not in groups


def test_a_task_directory_without_a_stat_file_is_skipped(tmp_path):
    tasks = tmp_path / "task"
    (tasks / "9").mkdir(parents=True)
    tracker = ThreadCpuTracker(tasks_dir=str(tasks), ticks_per_s=100.0)
    tracker.start()
    _write_task(tasks, "10", "late", ticks=50)
    assert [g.name for g in tracker.stop()] == ["late"]


def test_no_proc_filesystem_gives_an_empty_result(tmp_path):
    tracker = ThreadCpuTracker(tasks_dir=str(tmp_path / "missing"))
    tracker.start()
    tracker.poll()
    assert tracker.stop() == ()


def _burn(seconds: float, burnt: threading.Event, release: threading.Event) -> None:
    name_os_thread("plumber_burn")
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    burnt.set()
    release.wait(5)


@linux_only
def test_a_real_os_named_thread_shows_its_cpu_after_it_exits():
    # GIVEN a tracker, and a thread named at OS level that burns 0.3 s of CPU
    tracker = ThreadCpuTracker()
    tracker.start()
    burnt, release = threading.Event(), threading.Event()
    worker = threading.Thread(target=_burn, args=(0.3, burnt, release), name="py-name-only")
    worker.start()
    assert burnt.wait(10)
    # WHEN it is polled while alive and then exits before stop()
    tracker.poll()
    release.set()
    worker.join()
    groups = {g.name: g for g in tracker.stop()}
    # THEN its OS name carries the CPU; the Python-only name is invisible
    assert groups["plumber_burn"].cpu_time_s > 0.2
    assert groups["plumber_burn"].threads == 1
    assert "py-name-only" not in groups


def test_schedstat_gives_seconds_on_cpu_and_seconds_waiting_on_the_run_queue():
    assert parse_schedstat(b"2500000000 750000000 1234\n") == (2.5, 0.75)
    assert parse_schedstat(b"garbage") is None
    assert parse_schedstat(b"") is None


def test_groups_say_what_their_threads_are_and_how_long_they_waited_for_a_core(tmp_path):
    # GIVEN the main thread named after the console script, a framework pool that
    # inherited that name, plumber's sampler, and a thread with a name of its own
    tasks = tmp_path / "task"
    _write_task(tasks, "100", "plumber", ticks=10, queued_ns=0)
    tracker = ThreadCpuTracker(tasks_dir=str(tasks), ticks_per_s=100.0, main_tid="100")
    tracker.start()
    _write_task(tasks, "100", "plumber", ticks=60, queued_ns=1_000_000_000)
    _write_task(tasks, "101", "plumber", ticks=300, queued_ns=2_000_000_000, started=2000)
    _write_task(tasks, "102", "plumber", ticks=200, queued_ns=500_000_000, started=2001)
    _write_task(tasks, "103", "plumber-sampler", ticks=5, queued_ns=10_000_000, started=2002)
    _write_task(tasks, "104", "pt_pin_memory", ticks=20, started=2003)
    groups = tracker.stop()
    # THEN the inherited-name threads are the framework's, not plumber's, and plumber's
    # own thread is the profiler's; the main thread stands apart
    by_role = {(g.role, g.name): g for g in groups}
    assert set(by_role) == {
        ("inherited", "plumber"), ("main", "plumber"), ("profiler", "plumber-sampler"),
        ("named", "pt_pin_memory"),
    }
    framework = by_role[("inherited", "plumber")]
    assert (framework.threads, framework.cpu_time_s) == (2, 5.0)
    assert framework.runqueue_s == pytest.approx(2.5)
    main = by_role[("main", "plumber")]
    assert (main.cpu_time_s, main.runqueue_s) == (pytest.approx(0.5), pytest.approx(1.0))
    assert by_role[("profiler", "plumber-sampler")].runqueue_s == pytest.approx(0.01)
    # a thread whose schedstat could not be read leaves its group's wait unmeasured
    assert by_role[("named", "pt_pin_memory")].runqueue_s is None


def test_a_name_the_main_thread_took_during_the_run_counts_as_inherited(tmp_path):
    # torch renames the main thread (pt_main_thread); threads started after inherit that
    tasks = tmp_path / "task"
    _write_task(tasks, "1", "python", ticks=0, queued_ns=0)
    tracker = ThreadCpuTracker(tasks_dir=str(tasks), ticks_per_s=100.0, main_tid="1")
    tracker.start()
    _write_task(tasks, "1", "pt_main_thread", ticks=10, queued_ns=0)
    tracker.poll()
    _write_task(tasks, "2", "pt_main_thread", ticks=40, queued_ns=0, started=3000)
    roles = {(g.role, g.name) for g in tracker.stop()}
    assert roles == {("main", "pt_main_thread"), ("inherited", "pt_main_thread")}


@linux_only
def test_the_calling_threads_run_queue_wait_is_readable_and_never_decreases():
    first = thread_runqueue_s()
    assert first is not None and first >= 0
    assert thread_runqueue_s() >= first


@linux_only
def test_a_real_plumber_thread_is_grouped_as_the_profilers_overhead():
    # GIVEN a thread that names itself plumber-* and burns CPU, then exits
    tracker = ThreadCpuTracker()
    tracker.start()
    burnt, release = threading.Event(), threading.Event()

    def burn() -> None:
        name_os_thread("plumber-test")
        start = time.thread_time()
        while time.thread_time() - start < 0.05:
            pass
        burnt.set()
        release.wait(5)

    worker = threading.Thread(target=burn)
    worker.start()
    assert burnt.wait(10)
    tracker.poll()
    release.set()
    worker.join()
    groups = {(g.role, g.name): g for g in tracker.stop()}
    # THEN it is the profiler's, with its CPU and a measured run-queue wait
    profiler = groups[("profiler", "plumber-test")]
    assert profiler.cpu_time_s > 0
    assert profiler.runqueue_s is not None
