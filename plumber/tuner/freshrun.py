"""One measuring run of ``tune``, in a Python process of its own, as the user runs the script.

``tune`` measures the script as written and with the plan, round after
round. Run again in the process that already ran it, a script does not run
as it does when started afresh. The PyTorch data tutorial's loader with the
plan tune writes for it (its samples cached after ``Rescale``, persistent
workers) measured 40.7/s run again after a run as written, against 32.1/s
in fresh processes (medians of 5; every rerun above every fresh run), so
the plan looked 1.88x faster where a fresh run gives 1.48x (BENCHMARKS.md,
"Measuring runs"). Why is not pinned down; in ad-hoc runs, a fresh process
that ran the model once before its DataLoader forked the workers was faster
too, its workers using about a third less CPU a sample. The user runs the
script afresh, so each measuring run is a new ``python -m
plumber.tuner.freshrun REQUEST`` that profiles the script (the plan in
force when given) and writes the profile and how the script ended into the
request's folder.

The child runs in a session of its own, its standard input empty: Ctrl-C,
SIGTERM or SIGHUP reaching ``tune`` is passed to it once, it ends its run
as ``profile`` ends one, and ``tune`` then stops as it did when the runs
were its own (:func:`plumber.capture.scriptrun.stop_again`). It gets
SIGTERM if ``tune`` dies first. A run whose tf.data service went away is
reported to the caller's ``on_service_lost``, as an in-process run's was.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from plumber.capture.scriptrun import ScriptOutcome, stop_again
from plumber.capture.session import SessionOptions, SessionResult
from plumber.measure.runbounds import TERMINATING_SIGNALS
from plumber.records import exitcodes
from plumber.records.plan import Plan
from plumber.records.profile import Profile

#: The options a measuring run takes from the caller's (the rest stay at their defaults,
#: no stack sampling among them; :func:`measuring_options` sets the others).
PASSED_OPTIONS = ("steps", "duration_s", "sample_interval_s", "poll_interval_s",
                  "capacity_cache_dir", "net_probe_s", "keep_secrets", "service_timeout_s",
                  "link_bps")

#: Linux's ``prctl`` option sending a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1


class MeasuringRunFailed(RuntimeError):
    """A measuring run's process ended without saying how the script ended (plumber failed)."""


def fresh_profile(
    script: Path, args: Sequence[str], options: SessionOptions, plan: Plan | None = None
) -> Profile:
    """The profile of one run of ``script`` in a fresh process, ``plan`` in force when given.

    A stop from outside (Ctrl-C, SIGTERM, SIGHUP) during the run is raised
    again here; a run whose tf.data service went away goes to
    ``options.on_service_lost`` (which ends the process), else raises
    :class:`MeasuringRunFailed`, as does a child that leaves no result.
    """
    folder = Path(tempfile.mkdtemp(prefix="plumber-measure-"))
    try:
        request = _request(folder, script, args, options, plan)
        stopped = _run_child(request)
        if stopped is not None:
            stop_again(ScriptOutcome(exit_status=128 + stopped, stop_signal=stopped))
        return _result(folder, options)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _request(folder: Path, script: Path, args: Sequence[str], options: SessionOptions,
             plan: Plan | None) -> Path:
    """Write what the child needs (script, arguments, options, plan) and return its path."""
    plan_file = None if plan is None else str(plan.save(folder / "plan.json"))
    request = folder / "request.json"
    request.write_text(json.dumps({
        "script": str(script),
        "args": list(args),
        "options": {name: getattr(options, name) for name in PASSED_OPTIONS},
        "plan": plan_file,
        "profile": str(folder / "profile.json"),
        "outcome": str(folder / "outcome.json"),
    }))
    return request


def _run_child(request: Path) -> int | None:
    """Run the child to its end; the stop signal this process got meanwhile, passed on, or None."""
    with _passing_stops() as stops:
        child = subprocess.Popen([sys.executable, "-m", "plumber.tuner.freshrun", str(request)],
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        stops.child = child
        for signum in stops:
            _send(child, signum)
        while True:
            try:
                child.wait()
                break
            except KeyboardInterrupt:
                stops.append(signal.SIGINT)
                _send(child, signal.SIGINT)
    return stops[0] if stops else None


class _Stops(list):
    """The stop signals received while a child runs, and the child to pass them to."""

    child: subprocess.Popen[bytes] | None = None


@contextlib.contextmanager
def _passing_stops() -> Iterator[_Stops]:
    """While a child runs, SIGTERM and SIGHUP here are sent on to it and remembered
    (Ctrl-C arrives as KeyboardInterrupt, which the caller passes on)."""
    stops = _Stops()

    def pass_on(signum: int, frame: Any) -> None:
        stops.append(signum)
        if stops.child is not None:
            _send(stops.child, signum)

    replaced = {}
    if _in_main_thread():
        for signum in TERMINATING_SIGNALS:
            replaced[signum] = signal.signal(signum, pass_on)
    try:
        yield stops
    finally:
        for signum, previous in replaced.items():
            signal.signal(signum, previous)


def _send(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _result(folder: Path, options: SessionOptions) -> Profile:
    """The child's profile; a lost tf.data service goes to ``options.on_service_lost``."""
    try:
        ended = json.loads((folder / "outcome.json").read_text())
        profile = Profile.load(folder / "profile.json")
    except (OSError, ValueError) as exc:
        raise MeasuringRunFailed(
            f"a measuring run ended without its profile ({exc}); plumber's error, if any, "
            f"is printed above") from None
    outcome = ScriptOutcome(exit_status=int(ended["exit_status"]), error=ended.get("error"))
    if ended.get("service_lost"):
        if options.on_service_lost is not None:
            options.on_service_lost(lambda: SessionResult(profile, outcome))
        raise MeasuringRunFailed(f"a measuring run's tf.data service went away: {outcome.error}")
    stop_again(ScriptOutcome(exit_status=outcome.exit_status,
                             stop_signal=ended.get("stop_signal")))
    return profile


def measuring_options(options: SessionOptions, script: Path, plan: Plan | None) -> SessionOptions:
    """``options`` as a measuring run takes them, in a fresh process or in tune's: no CPU
    probe, nothing printed, ``plan``'s settings in force when given."""
    from plumber.tuner.appliers import applying

    return dataclasses.replace(
        options, cpu_probe_s=0.0, notify=lambda message: None,
        around_script=(lambda: applying(plan, script)) if plan is not None else None)


def _main(request_path: str) -> int:
    """The child: profile the script as the request says, write its profile and outcome."""
    from plumber.capture.session import profile_script

    _end_with_parent()
    request = json.loads(Path(request_path).read_text())
    script = Path(request["script"])
    plan = Plan.load(request["plan"]) if request["plan"] else None
    profile_file, outcome_file = Path(request["profile"]), Path(request["outcome"])

    def service_lost(profile_of_lost_run: Any) -> None:
        result = profile_of_lost_run()
        _write(result, profile_file, outcome_file, service_lost=True)
        os._exit(exitcodes.SERVICE_LOST)

    options = measuring_options(
        SessionOptions(on_service_lost=service_lost, **request["options"]), script, plan)
    result = profile_script(script, request["args"], options)
    _write(result, profile_file, outcome_file)
    return exitcodes.OK


def _write(result: SessionResult, profile_file: Path, outcome_file: Path,
           service_lost: bool = False) -> None:
    """The profile, then how the script ended (written last: the parent's sign of a result)."""
    result.profile.save(profile_file)
    outcome = result.outcome
    outcome_file.write_text(json.dumps({
        "exit_status": outcome.exit_status, "error": outcome.error,
        "stop_signal": outcome.stop_signal, "service_lost": service_lost}))


def _end_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when ``tune`` dies (Linux; else nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))

