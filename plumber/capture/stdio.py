"""Writing to stdout and stderr after their reader has gone (``plumber ... | head -1``).

Python raises BrokenPipeError on a write to a pipe whose reader exited, and
again when it flushes at exit (status 120). Plumber's own lines must not
turn that into a lost profile or a changed exit status, so once a stream's
reader is gone its output is dropped, as Python's documentation advises:
the stream's descriptor is pointed at /dev/null.

The script runs in plumber's process and may close ``sys.stdout`` or
``sys.stderr``, or replace them (``None``, a ``StringIO``). Python at exit
flushes only what is left open, and so does plumber; its own lines, which
come after the script, go to the streams it started with
(:func:`own_streams_kept`), reopened on their descriptors if the script
closed them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO


def write_now(stream: TextIO | None, text: str) -> None:
    """Write ``text`` to ``stream`` and flush it; dropped if the stream's reader has gone.

    A file name or argument that is not UTF-8 reaches Python as lone
    surrogates, which a strict stream (stdout under ``PYTHONIOENCODING=utf-8``
    or most UTF-8 locales) refuses to encode: such text is written with
    backslash escapes (``\\udcff``), as Python writes it to stderr.

    A stream that cannot be written (its descriptor closed, the stream
    closed, the disk full) drops the text too: plumber's lines are never
    worth the profile.
    """
    if stream is None:  # the script set sys.stderr = None: Python prints nothing either
        return
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:  # raised before anything is written
            encoding = getattr(stream, "encoding", None) or "utf-8"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except (OSError, ValueError):  # ValueError: a closed stream
        discard_output(stream)


def flushed(stream: TextIO | None) -> bool:
    """Flush ``stream``; False (its output from now on dropped) if its reader has gone.

    A stream the script closed or set to None is left alone, as Python
    leaves it at exit.
    """
    if stream is None or getattr(stream, "closed", False):
        return True
    try:
        stream.flush()
    except BrokenPipeError:
        discard_output(stream)
        return False
    return True


@contextlib.contextmanager
def own_streams_kept() -> Iterator[None]:
    """While active the script may do what it likes with ``sys.stdout`` and ``sys.stderr``.

    On exit both are the streams they were on entry again; one the script
    closed is reopened on its descriptor (writes to a descriptor the script
    closed too are dropped by :func:`write_now`).
    """
    saved = [(stream, _descriptor(stream)) for stream in (sys.stdout, sys.stderr)]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = (_open_again(stream, fd) for stream, fd in saved)


def _descriptor(stream: TextIO | None) -> int | None:
    try:
        return stream.fileno() if stream is not None else None
    except (OSError, ValueError, AttributeError):  # a test's captured stream has none
        return None


def _open_again(stream: TextIO | None, descriptor: int | None) -> TextIO | None:
    """``stream`` if it is still open, else a new one on the same descriptor (not closing it)."""
    if stream is None or not stream.closed or descriptor is None:
        return stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    # Not closed here: it is sys.stdout or sys.stderr for the rest of the process.
    return open(descriptor, "w", encoding=encoding, errors="backslashreplace",  # noqa: SIM115
                closefd=False, buffering=1)


def discard_output(stream: TextIO) -> None:
    """Send what ``stream`` holds and will be given to /dev/null, so no write raises again."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor (a test's captured stream)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
        stream.flush()
