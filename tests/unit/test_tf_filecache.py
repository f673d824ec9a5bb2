"""The file-cache folder a plan names: which cache a run gets, which it clears, which it keeps.

Caches are stood in by the files tf.data writes (``KEY.index``, ``KEY.data-...``,
``KEY_0.lockfile`` while writing) and plumber's records of the processes using them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from plumber.tf.filecache import KEY_LENGTH, place

CURRENT = "c" * KEY_LENGTH
OLD = "0" * KEY_LENGTH


def _ended() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_cache(folder: Path, key: str, complete: bool, user: int | None,
                started: str = "?") -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if complete:
        (folder / f"{key}.index").write_text("index")
        (folder / f"{key}.data-00000-of-00001").write_text("data")
    else:
        (folder / f"{key}_0.lockfile").write_text("Created at: 0")
        (folder / f"{key}_0.data-00000-of-00001.tempstate123").write_text("part")
    if user is not None:
        (folder / f"{key}.owner-{user}").write_text(f"{socket.gethostname()} {user} {started}\n")


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_a_complete_cache_of_the_current_key_is_read_and_the_run_recorded(tmp_path):
    write_cache(tmp_path, CURRENT, complete=True, user=None)
    placed = place(tmp_path, CURRENT)
    assert placed.prefix == str(tmp_path / CURRENT)
    assert names(tmp_path) == {f"{CURRENT}.index", f"{CURRENT}.data-00000-of-00001",
                               f"{CURRENT}.owner-{os.getpid()}"}


def test_a_lock_left_by_a_killed_writer_is_cleared_with_its_partial_cache(tmp_path):
    write_cache(tmp_path, CURRENT, complete=False, user=_ended())
    placed = place(tmp_path, CURRENT)
    assert placed.prefix == str(tmp_path / CURRENT)
    assert names(tmp_path) == {f"{CURRENT}.owner-{os.getpid()}"}


def test_a_lock_without_any_record_is_cleared(tmp_path):
    write_cache(tmp_path, CURRENT, complete=False, user=None)
    place(tmp_path, CURRENT)
    assert not list(tmp_path.glob("*lockfile")) and not list(tmp_path.glob("*tempstate*"))


def test_a_cache_another_live_process_is_writing_is_left_to_it(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_cache(tmp_path, CURRENT, complete=False, user=writer.pid)
        placed = place(tmp_path, CURRENT)
        assert (tmp_path / f"{CURRENT}_0.lockfile").exists()
        assert Path(placed.prefix).name.startswith(f"run-{os.getpid()}-")
        assert f"process {writer.pid} is writing this cache" in placed.note
    finally:
        writer.kill()
        writer.wait()


def test_a_recorded_pid_now_used_by_another_process_counts_as_dead(tmp_path):
    write_cache(tmp_path, CURRENT, complete=False, user=os.getpid(), started="1")
    place(tmp_path, CURRENT)
    assert not (tmp_path / f"{CURRENT}_0.lockfile").exists()


def test_caches_of_other_keys_are_removed_unless_a_live_process_uses_them(tmp_path):
    write_cache(tmp_path, OLD, complete=True, user=_ended())
    live = "1" * KEY_LENGTH
    write_cache(tmp_path, live, complete=True, user=os.getppid())
    (tmp_path / "notes.txt").write_text("the user's own file")
    place(tmp_path, CURRENT)
    assert not any(name.startswith(OLD) for name in names(tmp_path))
    assert f"{live}.index" in names(tmp_path) and "notes.txt" in names(tmp_path)


def test_without_a_key_the_cache_is_for_this_run_only_and_a_dead_runs_one_is_removed(tmp_path):
    stale = f"run-{_ended()}-0123abcd"
    write_cache(tmp_path, stale, complete=True, user=int(stale.split("-")[1]))
    placed = place(tmp_path, None)
    assert Path(placed.prefix).parent == tmp_path
    assert "cannot be fingerprinted" in placed.note and "removed at exit" in placed.note
    assert not any(name.startswith(stale) for name in names(tmp_path))


def test_a_folder_others_can_write_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    write_cache(shared, CURRENT, complete=True, user=None)
    shared.chmod(0o777)
    placed = place(shared, CURRENT)
    assert "is not private: it is writable by" in placed.note
    assert not placed.prefix.startswith(str(shared))


def test_a_missing_folder_is_made_private(tmp_path):
    place(tmp_path / "a" / "b", CURRENT)
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
