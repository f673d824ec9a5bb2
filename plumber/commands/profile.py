"""``plumber profile SCRIPT [-- ARGS]``: run a script, find its bottleneck."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from plumber.capture.stdio import write_now
from plumber.commands.base import (
    add_keep_secrets,
    add_run_bounds,
    add_script_arguments,
    duration_seconds,
    hotspots_rate,
    link_bandwidth,
    positive_int,
    say,
    script_unusable,
)
from plumber.records import exitcodes
from plumber.tf.servicewatch import DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from plumber.capture.session import SessionOptions, SessionResult
    from plumber.commands.planned import PlannedRun
    from plumber.reports.outputs import Rendered

#: The files a profiling run writes to its output folder, by what they hold.
RUN_FILES = {"profile": "profile.json", "report": "report.html"}


def default_output_dir(script: Path) -> Path:
    """``./plumber-out/<script>-<YYYYmmdd-HHMMSS>``: one folder per run, never overwritten."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("plumber-out") / f"{script.stem}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


class ProfileCommand:
    name = "profile"
    help = "run a training script and report its input-pipeline bottleneck"
    description = (
        "Run SCRIPT (with SCRIPT_ARGS after --) under instrumentation, unmodified. "
        "Writes profile.json and report.html to the output folder and prints a summary. "
        "Exits with the script's own exit status."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_script_arguments(parser)
        parser.add_argument(
            "-o", "--output", type=Path, default=None,
            help="output folder (default: ./plumber-out/SCRIPT-TIMESTAMP)",
        )
        parser.add_argument(
            "--plan", type=Path, default=None,
            help="profile the script with this plan's settings in force (as plumber run "
                 "--plan applies them); the profile records the plan and the report sets "
                 "the rates it predicted against this run's")
        parser.add_argument(
            "--data-service", metavar="grpc://HOST:PORT",
            help="with --plan: run the plan's offload cut on the tf.data service at this "
                 "dispatcher")
        parser.add_argument(
            "--service-workers", type=positive_int, default=None, metavar="N",
            help="with --data-service: the service's workers (plumber cannot read it from "
                 "the service), so the plan's prediction for N workers is set against the run")
        add_profiling_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        if script_unusable(args.script):
            return exitcodes.USAGE
        if args.data_service is not None and args.plan is None:
            say("error: --data-service needs --plan: the plan's offload section names the cut "
                "to run on the service")
            return exitcodes.USAGE
        if args.service_workers is not None and args.data_service is None:
            say("error: --service-workers needs --data-service: it says how many workers "
                "that service has")
            return exitcodes.USAGE
        planned = None
        if args.plan is not None:
            from plumber.commands.planned import planned_run

            planned = planned_run(args, args.service_workers)
            if isinstance(planned, int):
                return planned
        from plumber.records.files import OutputError, checked_output_folder

        try:
            out_dir = checked_output_folder(args.output or default_output_dir(args.script),
                                            RUN_FILES, {"script": args.script})
        except OutputError as exc:
            say(f"error: {exc}")
            return exitcodes.USAGE
        try:
            result, _ = profiling_run(args, out_dir / RUN_FILES["profile"],
                                      out_dir / RUN_FILES["report"], planned)
        except RunFilesNotWritten as failed:
            return failed.exit_status
        return result.outcome.exit_status


def add_profiling_options(parser: argparse.ArgumentParser) -> None:
    """What ``profile`` and ``tune`` share: the run's bounds, ``--keep-secrets``, ``--hotspots``,
    ``--service-timeout`` and ``--link-bandwidth``.

    ``--hotspots`` samples the Python stacks of each stage with py-spy,
    ``--hotspots-rate`` times a second per thread (giving it implies ``--hotspots``).
    """
    from plumber.measure.hotspots import DEFAULT_RATE_HZ

    add_run_bounds(parser)
    add_keep_secrets(parser)
    parser.add_argument(
        "--hotspots", action="store_true",
        help="sample the script's Python stacks and its DataLoader workers' with py-spy and "
             "report each stage's hottest functions (needs py-spy: the 'hotspots' extra)",
    )
    parser.add_argument(
        "--service-timeout", type=duration_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"seconds a read from a tf.data service (or a Keras train step reading "
             f"from one) may wait before the run ends as lost, with its profile written "
             f"and exit status "
             f"{exitcodes.SERVICE_LOST} (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument(
        "--link-bandwidth", type=link_bandwidth, default=None, metavar="RATE",
        help="the network's rate between this machine and hosts that could run the "
             "pipeline's work (10Gb/s, 100Mbit/s, 1.25GB/s): the offload what-if uses it "
             "instead of assuming 10Gb/s")
    parser.add_argument(
        "--hotspots-rate", type=hotspots_rate, default=None, metavar="HZ",
        help=f"samples per second of each thread for --hotspots, which it implies (default "
             f"{DEFAULT_RATE_HZ}; more gives firmer shares on a short run and costs py-spy "
             "more CPU)",
    )


class RunFilesNotWritten(Exception):  # noqa: N818 - an outcome the command exits with
    """A run's profile or report could not be written; the reason has been said."""

    def __init__(self, exit_status: int) -> None:
        super().__init__(exit_status)
        #: What the command exits with: the script's own status when it failed, else
        #: 2 (an output that could not be written) or 70 (a bug while rendering).
        self.exit_status = exit_status


def session_options(args: argparse.Namespace) -> SessionOptions:
    """The session options the command line gave, for every run of the script but stack sampling.

    Only a profiling run samples stacks (:func:`profiling_run` adds ``--hotspots``):
    ``tune``'s measured runs compare rates, which sampling would disturb. Every
    run watches the reads from a tf.data service the script sets up; a
    measured run whose service went away ends the command
    (:func:`_end_measuring_run`), the profiling run writes its files first.
    """
    from plumber.capture.session import SessionOptions

    return SessionOptions(steps=args.steps, duration_s=args.duration, cpu_probe_s=args.cpu_probe,
                          notify=say, keep_secrets=args.keep_secrets,
                          service_timeout_s=args.service_timeout,
                          on_service_lost=_end_measuring_run,
                          link_bps=args.link_bandwidth)


def profiling_run(args: argparse.Namespace, profile_file: Path, report_file: Path,
                  planned: PlannedRun | None = None) -> tuple[SessionResult, Rendered]:
    """Profile the script, write its profile and report, print the summary.

    ``profile`` is this run; ``tune`` derives its plan from it. With
    ``planned``, the script runs with that plan in force, and the profile
    records it (:class:`plumber.records.profile.AppliedPlan`). Raises
    :class:`RunFilesNotWritten` when a file cannot be written (see
    :func:`write_run_files`).
    """
    from plumber.capture.session import profile_script
    from plumber.measure.hotspots import DEFAULT_RATE_HZ

    say(f"profiling {args.script}")
    sampled = dataclasses.replace(
        session_options(args), hotspots=args.hotspots or args.hotspots_rate is not None,
        hotspots_rate_hz=args.hotspots_rate or DEFAULT_RATE_HZ,
        service_timeout_s=args.service_timeout,
        on_service_lost=functools.partial(_end_lost_run, profile_file, report_file, planned))
    if planned is not None:
        say(f"with the settings of {planned.file} in force")
        sampled = dataclasses.replace(
            sampled, around_script=functools.partial(planned.in_force, args.script))
    result = _with_plan_recorded(profile_script(args.script, args.script_args, sampled), planned)
    if result.profile.applied_plan is not None:
        for line in result.profile.applied_plan.changes:
            say(line)
    rendered = write_run_files(result, profile_file, report_file)
    write_now(sys.stderr, rendered.summary + "\n")
    return result, rendered


def _with_plan_recorded(result: SessionResult, planned: PlannedRun | None) -> SessionResult:
    """``result`` with the plan its run applied in its profile (as is without one)."""
    if planned is None:
        return result
    applied = planned.record(succeeded=result.outcome.exit_status == 0)
    return dataclasses.replace(
        result, profile=dataclasses.replace(result.profile, applied_plan=applied))


def _end_lost_run(profile_file: Path, report_file: Path, planned: PlannedRun | None,
                  profile_of_lost_run: Callable[[], SessionResult]) -> None:
    """Write the profile of a run whose tf.data service went away, then end the process.

    Called from the service watch's thread: the script waits in a read that
    never returns, so the process ends here, with
    :data:`plumber.records.exitcodes.SERVICE_LOST`, whatever happens on the way.
    """

    def write() -> None:
        result = _with_plan_recorded(profile_of_lost_run(), planned)
        try:
            rendered = write_run_files(result, profile_file, report_file)
        except RunFilesNotWritten:
            return
        write_now(sys.stderr, rendered.summary + "\n")
        say(f"error: {result.outcome.error}")

    _exit_lost(write, "while writing the profile of a lost run")


def _end_measuring_run(profile_of_lost_run: Callable[[], SessionResult]) -> None:
    """End ``tune`` when the tf.data service of one of its measured runs went away.

    Called from the service watch's thread while the script waits in a read
    that never returns: the profiling run's profile and report are written
    already, no plan is, and the process ends with
    :data:`plumber.records.exitcodes.SERVICE_LOST`.
    """

    def tell() -> None:
        error = profile_of_lost_run().outcome.error
        say(f"error: {error}; it went away while tune measured the plan, so no plan was "
            f"written")

    _exit_lost(tell, "while telling why tune stopped measuring (no plan was written)")


def _exit_lost(last_words: Callable[[], None], during: str) -> None:
    """Run ``last_words``, then end the process with SERVICE_LOST, whatever they raise."""
    try:
        last_words()
    except Exception:  # noqa: BLE001 - the process must end whatever failed
        traceback.print_exc()
        say(f"plumber: internal error {during} (a bug in plumber; the traceback is above)")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(exitcodes.SERVICE_LOST)


def write_run_files(result: SessionResult, profile_file: Path, report_file: Path) -> Rendered:
    """Save a run's profile, then render its report; the rendered report and summary.

    The outputs were checked before the run, but a disk can fill or a folder
    change meanwhile: a file that cannot be written then is one line on
    stderr (naming the saved profile when only the report failed) and
    :class:`RunFilesNotWritten`, never a traceback. ``profile`` and ``tune``
    both write their run's files through here.
    """
    from plumber.reports.outputs import render

    failed_status = result.outcome.exit_status
    try:
        profile_path = result.profile.save(profile_file)
    except OSError as exc:
        say(f"error: the profile could not be written: {exc}")
        raise RunFilesNotWritten(failed_status or exitcodes.USAGE) from None
    try:
        return render(result.profile, report_file, profile_path)
    except OSError as exc:
        say(f"error: the report could not be written ({exc}); the profile is saved at "
            f"{profile_path}")
        raise RunFilesNotWritten(failed_status or exitcodes.USAGE) from None
    except Exception:  # noqa: BLE001 - the saved profile must still be announced
        traceback.print_exc()
        say(f"error: the report could not be written; the profile is saved at {profile_path}")
        raise RunFilesNotWritten(failed_status or exitcodes.INTERNAL) from None
