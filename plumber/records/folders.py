"""plumber's own folders on disk, and how much room file caches have there.

``default_cache_dir`` holds what plumber keeps between runs (machine
capacity measurements); file caches that a plan places go in its ``data``
subfolder unless the plan names another path. The profile records that
folder and its free space, so the (pure) analysis can check a file cache
against the disk budget.

What plumber reads back from a folder (a cache entry, the capacity
measurements) is trusted only in a private folder: one this user owns that
group and others cannot write (:func:`folder_problem`), and only from a
file that is private too (:func:`private_file`). The caches share that rule.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

#: Mode bits that let someone other than the owner write a file or folder.
WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def default_cache_dir() -> Path:
    """``$PLUMBER_CACHE_DIR``, else ``$XDG_CACHE_HOME/plumber``, else ``~/.cache/plumber``."""
    explicit = os.environ.get("PLUMBER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "plumber" if xdg else Path.home() / ".cache" / "plumber"


def data_cache_dir() -> Path:
    """Where a plan's file caches go unless it names another folder."""
    return default_cache_dir() / "data"


def free_bytes(folder: Path) -> int | None:
    """Free space on the filesystem that holds (or would hold) ``folder``; None if unknown."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def folder_problem(status: os.stat_result) -> str | None:
    """Why a folder with ``status`` is not private, or None when it is."""
    if not stat.S_ISDIR(status.st_mode):
        return "it is not a folder"
    if status.st_uid != os.geteuid():
        return (f"it is owned by {_user(status.st_uid)}, not by this user "
                f"({_user(os.geteuid())})")
    if status.st_mode & WRITABLE_BY_OTHERS:
        return writable_problem(status)
    return None


def writable_problem(status: os.stat_result) -> str:
    """Who besides the owner may write what has ``status``: ``it is writable by group ...``."""
    who = " and ".join(name for bit, name in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others"))
                       if status.st_mode & bit)
    return f"it is writable by {who} (mode {stat.S_IMODE(status.st_mode):04o})"


def private_file(status: os.stat_result) -> bool:
    """Whether ``status`` is of a plain file this user owns that no one else may write."""
    return (stat.S_ISREG(status.st_mode) and status.st_uid == os.geteuid()
            and not status.st_mode & WRITABLE_BY_OTHERS)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
