"""Per-thread CPU accounting from /proc/self/task."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from plumber.threadcpu import ThreadCpuTracker, name_os_thread, parse_task_stat

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


def _stat_line(name: str, utime: int, stime: int, started: int = 1000) -> str:
    # Fields 3..22 of proc_pid_stat(5): state, ppid, ..., utime (14), stime (15), ... starttime.
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0",
              str(utime), str(stime), "0", "0", "20", "0", "1", "0", str(started)]
    return f"4242 ({name}) {' '.join(fields)} 0 0\n"


def _write_task(tasks: Path, tid: str, name: str, ticks: int, started: int = 1000) -> None:
    (tasks / tid).mkdir(parents=True, exist_ok=True)
    (tasks / tid / "stat").write_text(_stat_line(name, ticks, 0, started))


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
