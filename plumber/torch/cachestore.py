"""A directory of cache entries shared by a DataLoader's worker processes.

One file per index, written atomically (a temporary file, then
``os.replace``), so any process reads either a whole entry or none, whether
the workers were forked or spawned, and entries survive from one epoch to
the next. The byte budget is a hard limit over all processes: each entry's
size is reserved in a shared ``usage`` file under an ``flock`` before it is
written, and when the budget (or the room left on the filesystem) would be
exceeded the store records that it is full and takes no more entries. The
entries already written stay valid. Nothing here holds an open file between
calls, so the store pickles as its path and settings.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

#: Room always left free on the cache's filesystem (and in RAM for a memory
#: cache): this share of its size, and at least :data:`MIN_RESERVE_BYTES`.
RESERVE_SHARE = 0.05
MIN_RESERVE_BYTES = 64 * 2**20

_USAGE = "usage"
_FULL = "full"
_LOCK = "lock"
_SUFFIX = ".entry"


class EntryStore:
    """Entries keyed by name in ``directory``, at most ``budget_bytes`` of them in all.

    ``in_memory`` says the directory is RAM-backed (``/dev/shm``), so the
    memory available is checked as well as the filesystem's free space.
    """

    def __init__(self, directory: Path, budget_bytes: int | None, in_memory: bool) -> None:
        if budget_bytes is not None and budget_bytes < 0:
            raise ValueError(f"budget_bytes must be zero or more, not {budget_bytes}")
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.in_memory = in_memory
        self._full_seen = False

    def load(self, name: str) -> bytes | None:
        """The entry's bytes, or None when it was never written."""
        try:
            return (self.directory / f"{name}{_SUFFIX}").read_bytes()
        except FileNotFoundError:
            return None

    def save(self, name: str, payload: bytes) -> bool:
        """Store the entry unless that would pass the budget; True when it is stored."""
        target = self.directory / f"{name}{_SUFFIX}"
        with self._locked():
            if self.full:
                return False
            if target.exists():
                return True
            used = self.used_bytes()
            size = len(payload)
            if self.budget_bytes is not None and used + size > self.budget_bytes:
                return self._mark_full(f"its budget of {self.budget_bytes} bytes is used")
            problem = self._no_room(size)
            if problem is not None:
                return self._mark_full(problem)
            _write_atomically(self.directory / _USAGE, str(used + size).encode())
        try:
            _write_atomically(target, payload)
        except OSError as exc:
            return self._mark_full(f"writing an entry failed ({exc})")
        return True

    @property
    def full(self) -> bool:
        """Whether the store takes no more entries (seen once, remembered)."""
        if not self._full_seen:
            self._full_seen = (self.directory / _FULL).exists()
        return self._full_seen

    def full_reason(self) -> str | None:
        """Why the store is full, or None while it is not."""
        try:
            return (self.directory / _FULL).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def used_bytes(self) -> int:
        """Bytes of entries stored or reserved so far."""
        try:
            return int((self.directory / _USAGE).read_bytes() or 0)
        except FileNotFoundError:
            return 0

    def entries(self) -> int:
        """How many entries are stored."""
        return sum(1 for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))

    def _mark_full(self, reason: str) -> bool:
        _write_atomically(self.directory / _FULL, reason.encode())
        self._full_seen = True
        return False

    def _no_room(self, size: int) -> str | None:
        disk = shutil.disk_usage(self.directory)
        if disk.free - size < max(MIN_RESERVE_BYTES, RESERVE_SHARE * disk.total):
            return f"its filesystem is nearly full ({disk.free} bytes free)"
        if self.in_memory:
            memory = psutil.virtual_memory()
            if memory.available - size < max(MIN_RESERVE_BYTES, RESERVE_SHARE * memory.total):
                return f"memory is nearly exhausted ({memory.available} bytes available)"
        return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Opened per call: a descriptor inherited through fork would share
        # its flock with the parent and exclude nothing.
        with open(self.directory / _LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, payload: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
