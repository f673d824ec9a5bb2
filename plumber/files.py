"""Writing plumber's own files so a crash never leaves a half-written one."""

from __future__ import annotations

from pathlib import Path


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; return the path.

    The folder is created when missing. A reader sees the old file or the new
    one, never a truncated one (profiles are written also when a run fails).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
