"""Writing to stdout and stderr after their reader has gone (``plumber ... | head -1``).

Python raises BrokenPipeError on a write to a pipe whose reader exited, and
again when it flushes at exit (status 120). Plumber's own lines must not
turn that into a lost profile or a changed exit status, so once a stream's
reader is gone its output is dropped, as Python's documentation advises:
the stream's descriptor is pointed at /dev/null.
"""

from __future__ import annotations

import contextlib
import os
from typing import TextIO


def write_now(stream: TextIO, text: str) -> None:
    """Write ``text`` to ``stream`` and flush it; dropped if the stream's reader has gone.

    A file name or argument that is not UTF-8 reaches Python as lone
    surrogates, which a strict stream (stdout under ``PYTHONIOENCODING=utf-8``
    or most UTF-8 locales) refuses to encode: such text is written with
    backslash escapes (``\\udcff``), as Python writes it to stderr.
    """
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:  # raised before anything is written
            encoding = getattr(stream, "encoding", None) or "utf-8"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except BrokenPipeError:
        discard_output(stream)


def flushed(stream: TextIO) -> bool:
    """Flush ``stream``; False (its output from now on dropped) if its reader has gone."""
    try:
        stream.flush()
    except BrokenPipeError:
        discard_output(stream)
        return False
    return True


def discard_output(stream: TextIO) -> None:
    """Send what ``stream`` holds and will be given to /dev/null, so no write raises again."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor (a test's captured stream)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
        stream.flush()
