"""Run a user's script in this process as ``python SCRIPT ARGS`` would.

The script runs as ``__main__`` with its own ``sys.argv`` and its directory
first on ``sys.path``. However it ends (normally, ``sys.exit``, an exception,
Ctrl-C, SIGTERM or SIGHUP, or plumber's own step/duration bound) the outcome
is returned, never raised, so the profile of what ran is always written
afterwards. A Ctrl-C or termination signal that Python loses (in a
``__del__``) is raised again at the loop's next step
(:class:`plumber.measure.runbounds.ScriptStopper`), so one is always enough.

The script may close or replace ``sys.stdout`` and ``sys.stderr``: what it
left open is flushed as Python flushes it at exit, and plumber's own lines
afterwards go to the streams plumber started with
(:func:`plumber.capture.stdio.own_streams_kept`).

A process the script forks (``os.fork()``) that leaves the script ends there
with the script's status, as ``python SCRIPT`` would: only the process that
started the script writes the profile, prints the summary or runs a plan's
end-of-run steps.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import stat
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from plumber.capture.stdio import flushed, own_streams_kept, write_now
from plumber.measure.runbounds import Terminated, remembering_interrupts

EXIT_INTERRUPTED = 130
#: Python's status when the script's output could not be written at its end (stdout closed).
EXIT_OUTPUT_LOST = 120


@dataclass(frozen=True)
class ScriptOutcome:
    """How the script ended."""

    exit_status: int
    error: str | None = None
    interrupted: bool = False
    bounded: bool = False
    #: The signal that stopped the script from outside (SIGINT for Ctrl-C, SIGTERM, SIGHUP).
    stop_signal: int | None = None


def run_script(
    script: Path,
    args: Sequence[str],
    is_bound_stop: Callable[[BaseException], bool],
) -> ScriptOutcome:
    """Run ``script`` with ``args``; ``is_bound_stop`` recognises plumber's own stop.

    In a child the script forked, this does not return: the child exits
    with the script's status.
    """
    starter = os.getpid()
    saved_argv, saved_path, start_folder = sys.argv[:], sys.path[:], os.getcwd()
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.resolve().parent))
    with own_streams_kept():
        try:
            outcome = _run(script, is_bound_stop)
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
            _back_if_removed(start_folder)
        outcome = _with_output_written(outcome)
    if os.getpid() != starter:
        os._exit(outcome.exit_status)
    return outcome


def _back_if_removed(start_folder: str) -> None:
    """Go back to ``start_folder`` if the script left plumber in a folder it removed.

    The script's own working folder is otherwise left as it was; but in a
    removed one no relative path resolves, and the report (source lines shown
    relative to it) and tune's plan (the script's folder) failed.
    """
    try:
        os.getcwd()
    except FileNotFoundError:
        with contextlib.suppress(OSError):  # the start folder is gone too: nothing to go to
            os.chdir(start_folder)


def _run(script: Path, is_bound_stop: Callable[[BaseException], bool]) -> ScriptOutcome:
    try:
        with remembering_interrupts():
            runpy.run_path(str(script), run_name="__main__")
        return ScriptOutcome(exit_status=0)
    except BaseException as exc:  # noqa: BLE001 - every ending must leave a profile
        try:
            return _ending(exc, is_bound_stop)
        finally:
            _release_frames(exc)


def _ending(exc: BaseException, is_bound_stop: Callable[[BaseException], bool]) -> ScriptOutcome:
    """The outcome of a script that ended by raising ``exc``."""
    if isinstance(exc, SystemExit):
        return _from_exit(exc)
    if is_bound_stop(exc):
        return ScriptOutcome(exit_status=0, bounded=True)
    if isinstance(exc, KeyboardInterrupt):
        return ScriptOutcome(EXIT_INTERRUPTED, error="interrupted (Ctrl-C)", interrupted=True,
                             stop_signal=signal.SIGINT)
    if isinstance(exc, Terminated):
        return ScriptOutcome(exc.exit_status, error=f"terminated ({exc})", interrupted=True,
                             stop_signal=exc.signum)
    _print_error("".join(traceback.format_exception(exc)))
    summary = f"{type(exc).__name__}: {exc}".strip()
    return ScriptOutcome(exit_status=1, error=summary.splitlines()[0][:500])


def _release_frames(exc: BaseException) -> None:
    """Drop what the script's finished frames hold, now, for each exception in ``exc``'s chain.

    An exception kept by a frame it passed through (a local bound to it, as
    torch's re-raise of a DataLoader worker's error does) makes a cycle, and
    everything those frames hold (the loader's iterator, with its workers)
    waits for the cyclic collector. That collector finalizes the iterator's
    queues before the iterator, so the iterator's ``__del__`` can no longer
    tell its workers to stop and waits 5 s on each before killing it.
    Cleared here, they are released in order as the run ends.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]


def stop_again(outcome: ScriptOutcome) -> None:
    """Raise again the Ctrl-C, SIGTERM or SIGHUP that stopped the script, if one did.

    For callers that run the script many times (tune's verification and
    search): a stop from outside ends them all, and the rate of a run cut
    short is never taken as a measurement.
    """
    if outcome.stop_signal == signal.SIGINT:
        raise KeyboardInterrupt
    if outcome.stop_signal is not None:
        raise Terminated(outcome.stop_signal)


def _from_exit(exc: SystemExit) -> ScriptOutcome:
    code = exc.code
    if code is None:
        return ScriptOutcome(exit_status=0)
    if isinstance(code, int):
        status = exit_status_of(code)
        return ScriptOutcome(exit_status=status,
                             error=None if status == 0 else f"exit status {status}")
    _print_error(f"{code}\n")
    return ScriptOutcome(exit_status=1, error=str(code)[:500])


def exit_status_of(code: int) -> int:
    """The status ``python SCRIPT`` exits with, as the shell sees it, for ``sys.exit(code)``.

    The OS keeps the low 8 bits (``sys.exit(256)`` is 0, ``sys.exit(-1)`` is
    255), and Python turns a code too large for a C long into -1, hence 255.
    Recording the code itself wrote ``sys.exit(2**70)`` into a profile that
    plumber then refused to load (a status beyond int64).
    """
    if not -(2**63) <= code < 2**63:
        return 255
    return code & 0xFF


def _print_error(text: str) -> None:
    """The script's error on its stderr, as Python prints it; dropped where that cannot be."""
    write_now(sys.stderr, text)


def _with_output_written(outcome: ScriptOutcome) -> ScriptOutcome:
    """Write out what the script left buffered; if its reader has gone, end as Python does.

    ``python SCRIPT | head -1`` exits 120 when the script's last output cannot
    be written; the output is dropped and the run reported with that status.
    """
    written = [flushed(stream) for stream in (sys.stdout, sys.stderr)]
    if all(written):
        return outcome
    return replace(
        outcome, exit_status=EXIT_OUTPUT_LOST,
        error=outcome.error or "the script's output could not be written (its reader had gone)",
    )


def check_script(script: Path) -> str | None:
    """A one-line reason why ``script`` cannot be run, or None.

    A device or socket is refused: Python reads a script whole, and
    ``/dev/zero`` grew until the kernel killed the run. A pipe is read as
    Python reads it (``plumber profile <(...)``).
    """
    try:
        mode = script.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"no such script: {script}"
    except OSError as exc:  # a name too long, a loop of links
        return f"cannot use {script} as the script: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return f"{script} is a directory, not a Python script"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        return f"{script} is a device or socket, not a Python script"
    if not os.access(script, os.R_OK):
        return f"cannot read {script}"
    return None
