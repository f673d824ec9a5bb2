"""plumber's own folders on disk, and how much room file caches have there.

``default_cache_dir`` holds what plumber keeps between runs (machine
capacity measurements); file caches that a plan places go in its ``data``
subfolder unless the plan names another path. The profile records that
folder and its free space, so the (pure) analysis can check a file cache
against the disk budget.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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
