"""Run a user's script in this process as ``python SCRIPT ARGS`` would.

The script runs as ``__main__`` with its own ``sys.argv`` and its directory
first on ``sys.path``. However it ends (normally, ``sys.exit``, an exception,
Ctrl-C, or plumber's own step/duration bound) the outcome is returned, never
raised, so the profile of what ran is always written afterwards. A Ctrl-C
that Python loses (in a ``__del__``) is raised again at the loop's next step
(:class:`plumber.runbounds.ScriptStopper`), so one is always enough.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plumber.runbounds import remembering_interrupts

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ScriptOutcome:
    """How the script ended."""

    exit_status: int
    error: str | None = None
    interrupted: bool = False
    bounded: bool = False


def run_script(
    script: Path,
    args: Sequence[str],
    is_bound_stop: Callable[[BaseException], bool],
) -> ScriptOutcome:
    """Run ``script`` with ``args``; ``is_bound_stop`` recognises plumber's own stop."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        with remembering_interrupts():
            runpy.run_path(str(script), run_name="__main__")
        return ScriptOutcome(exit_status=0)
    except SystemExit as exc:
        return _from_exit(exc)
    except BaseException as exc:  # noqa: BLE001 - every ending must leave a profile
        if is_bound_stop(exc):
            return ScriptOutcome(exit_status=0, bounded=True)
        if isinstance(exc, KeyboardInterrupt):
            return ScriptOutcome(EXIT_INTERRUPTED, error="interrupted (Ctrl-C)", interrupted=True)
        traceback.print_exc()
        summary = f"{type(exc).__name__}: {exc}".strip()
        return ScriptOutcome(exit_status=1, error=summary.splitlines()[0][:500])
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.stdout.flush()


def _from_exit(exc: SystemExit) -> ScriptOutcome:
    code = exc.code
    if code is None:
        return ScriptOutcome(exit_status=0)
    if isinstance(code, int):
        return ScriptOutcome(exit_status=code, error=None if code == 0 else f"exit status {code}")
    print(code, file=sys.stderr)
    return ScriptOutcome(exit_status=1, error=str(code)[:500])


def check_script(script: Path) -> str | None:
    """A one-line reason why ``script`` cannot be run, or None."""
    if not script.exists():
        return f"no such script: {script}"
    if script.is_dir():
        return f"{script} is a directory, not a Python script"
    if not os.access(script, os.R_OK):
        return f"cannot read {script}"
    return None
