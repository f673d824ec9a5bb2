"""Writing plumber's own files: checked before a run, never left half-written.

A command's output paths are resolved against the working folder plumber
started in (a script that changes folder must not move them), and checked
before the script runs: an output may not be a folder, overwrite one of the
command's inputs or another output, and its folder must take a small file
(an unwritable or full folder is found before a long run, not after).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path

#: Bytes the writability probe writes (a page: a full filesystem refuses it).
PROBE_BYTES = 4096


class OutputError(ValueError):
    """An output path that cannot be written, with a one-line reason."""


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; return the path.

    The folder is created when missing. A reader sees the old file or the new
    one, never a truncated one (profiles are written also when a run fails),
    and two processes writing the same output leave one of the two whole;
    a temporary file a full disk cut short is removed. A file name or
    argument that is not UTF-8 reaches Python as lone surrogates, which UTF-8
    cannot encode: each is written as its escape (``\\udcff``), so the file
    stays valid UTF-8 and a JSON string reads back the same surrogate.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per write: two processes writing one output never
    # write into each other's temporary file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def checked_outputs(outputs: Mapping[str, str | Path],
                    inputs: Mapping[str, str | Path] | None = None) -> dict[str, Path]:
    """``outputs`` (by what they hold) as absolute paths, checked; raise :class:`OutputError`.

    An output must not be an existing folder or anything else that is not a
    regular file (a device, pipe or socket: the new file is renamed over the
    path, so ``-o /dev/null`` run as root would replace the device), nor the
    same file as one of ``inputs`` or another output (a symbolic or hard link
    counts as the same file); its folder is created and must take a small
    file. Relative paths are taken from the working folder now, before a
    script can change it.
    """
    resolved = {what: Path(os.path.abspath(path)) for what, path in outputs.items()}
    for what, output in resolved.items():
        status = existing(output, f"the {what}")
        if status is not None and stat.S_ISDIR(status.st_mode):
            raise OutputError(f"the {what} would be written to {output}, which is a folder; "
                              f"give a file name")
        if status is not None and not stat.S_ISREG(status.st_mode):
            raise OutputError(f"the {what} would replace {output}, which is not a regular file "
                              f"(a device, pipe or socket); give a file name")
        for given, path in (inputs or {}).items():
            if same_file(output, Path(path)):
                raise OutputError(f"the {what} would overwrite the {given} {path}")
    for (first, one), (second, other) in combinations(resolved.items(), 2):
        if same_file(one, other):
            raise OutputError(f"the {first} and the {second} would both be written to {one}")
    for folder in dict.fromkeys(output.parent for output in resolved.values()):
        check_writable_folder(folder)
    return resolved


def checked_output_folder(folder: str | Path, files: Mapping[str, str],
                          inputs: Mapping[str, str | Path] | None = None) -> Path:
    """``folder`` as an absolute path, checked to take ``files`` (see :func:`checked_outputs`)."""
    absolute = Path(os.path.abspath(folder))
    status = existing(absolute, "the output folder")
    if status is not None and not stat.S_ISDIR(status.st_mode):
        raise OutputError(f"the output folder {absolute} exists and is not a folder")
    if files:
        checked_outputs({what: absolute / name for what, name in files.items()}, inputs)
    else:
        check_writable_folder(absolute)
    return absolute


def existing(path: Path, what: str) -> os.stat_result | None:
    """What is at ``path`` (links followed), None when nothing is; OutputError when unknowable.

    A name too long for the filesystem, or a loop of links, cannot be
    written either: it is refused before the run, not found after it.
    """
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise OutputError(f"cannot use {path} for {what}: {exc.strerror or exc}") from None


def check_writable_folder(folder: Path) -> None:
    """Create ``folder`` and write and remove a small file there; raise :class:`OutputError`."""
    probe = folder / f".plumber-write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file: the same path once links resolve, or one inode."""
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
