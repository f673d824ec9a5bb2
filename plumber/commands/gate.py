"""``plumber gate --baseline B.json SCRIPT|PROFILE.json``: fail CI when a pipeline slows down.

Prints a Markdown summary on stdout (for the job log or a job summary page)
and progress on stderr; exits 0 on a pass and with a gate code otherwise
(see :mod:`plumber.records.exitcodes`). ``--update`` records the baseline instead.
"""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from plumber.capture.stdio import write_now
from plumber.commands.base import (
    add_script_args_after_separator,
    cpu_probe_seconds,
    duration_seconds,
    positive_int,
    say,
)
from plumber.measure.runbounds import Terminated
from plumber.records import exitcodes

if TYPE_CHECKING:
    from plumber.gate.runner import RunOptions


def tolerance(text: str) -> float:
    """argparse type: a percentage with its sign (``10%``) as a fraction, 0 to under 100.

    A bare number is refused: ``0.1`` could mean 10% (a fraction, as
    :func:`plumber.gate.assert_throughput` takes it) or 0.1%, and guessing
    wrong loosens or tightens the gate a hundredfold.
    """
    stripped = text.strip()
    if not stripped.endswith("%"):
        raise argparse.ArgumentTypeError(
            f"--tolerance needs a % sign (write 10% to allow a 10% drop), got {text!r}: a bare "
            f"number could be a fraction or a percentage"
        )
    try:
        value = float(stripped.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError("must be at least 0% and below 100%")
    return value / 100


class GateCommand:
    name = "gate"
    help = "fail when a pipeline's throughput regresses against a committed baseline"
    description = (
        "Run SCRIPT (with SCRIPT_ARGS after --) several times under plumber profile, or read "
        "a saved PROFILE.json, and compare each pipeline's median rate and bottleneck with "
        "BASELINE, scaled by a calibration of this machine's speed. Exit codes: 0 pass, "
        "10 throughput regression, 11 new bottleneck, 12 missing/corrupt/incompatible "
        "baseline, 13 the script failed. --update records the baseline instead."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target", type=Path, metavar="SCRIPT|PROFILE.json",
                            help="a script to run, or a saved profile.json to gate")
        add_script_args_after_separator(parser)
        parser.add_argument("--baseline", type=Path, required=True,
                            help="the baseline JSON file (written by --update)")
        parser.add_argument("--tolerance", type=tolerance, default=0.10, metavar="PERCENT",
                            help="allowed drop below the calibrated expectation (default 10%%)")
        parser.add_argument("--update", action="store_true",
                            help="record the baseline from this run instead of comparing")
        parser.add_argument("--junit-xml", type=Path, default=None, metavar="PATH",
                            help="also write a JUnit XML report (one testcase per pipeline)")
        script_only = parser.add_argument_group("when gating a script")
        script_only.add_argument("--repeats", type=positive_int, default=None,
                                 help="runs to take the median over (default 3)")
        script_only.add_argument("--steps", type=positive_int, default=None,
                                 help="bound every run to this many elements at the consumer")
        script_only.add_argument("--duration", type=duration_seconds, default=None,
                                 help="bound every run to this many seconds")
        script_only.add_argument("--cpu-probe", type=cpu_probe_seconds, default=None,
                                 metavar="SECONDS",
                                 help="per-stage CPU probe of every run (default 2)")
        script_only.add_argument("-o", "--output", type=Path, default=None, metavar="DIR",
                                 help="keep each run's profile and report in DIR/run-N/")

    def run(self, args: argparse.Namespace) -> int:
        from plumber.gate import api
        from plumber.gate.baseline import BaselineError
        from plumber.gate.machine import CalibrationUnavailable
        from plumber.gate.runner import RunOptions, ScriptFailed
        from plumber.records.profile import ProfileFormatError, ProfileVersionError

        problem = _check_target(args) or _check_outputs(args)
        if problem is not None:
            return _error(problem, exitcodes.USAGE)
        defaults = RunOptions()
        options = RunOptions(
            repeats=args.repeats or defaults.repeats, steps=args.steps, duration_s=args.duration,
            cpu_probe_s=defaults.cpu_probe_s if args.cpu_probe is None else args.cpu_probe,
            output_dir=args.output,
        )
        script_args = args.script_args
        try:
            if args.update:
                return _update(args, script_args, options)
            result = api.check(args.target, args.baseline, args.tolerance, script_args,
                               options, say)
        except BaselineError as exc:
            return _error(str(exc), exitcodes.GATE_BAD_BASELINE, args.junit_xml, "baseline")
        except ScriptFailed as exc:
            print(exc.output_tail(), file=sys.stderr)
            return _error(str(exc), exitcodes.GATE_SCRIPT_FAILED, args.junit_xml, "script")
        except (ProfileFormatError, ProfileVersionError, CalibrationUnavailable,
                api.NothingToRecord) as exc:
            return _error(str(exc), exitcodes.USAGE, args.junit_xml, "input")
        except KeyboardInterrupt:
            return _error("interrupted", exitcodes.INTERRUPTED, args.junit_xml, "interrupted")
        except Terminated as stop:
            return _error(f"stopped by {stop} (the run in progress was stopped too)",
                          stop.exit_status, args.junit_xml, "interrupted")
        from plumber.gate.junit import gate_junit
        from plumber.gate.markdown import gate_summary

        write_now(sys.stdout, gate_summary(result))
        if args.junit_xml is not None:
            _write(args.junit_xml, gate_junit(result))
        return result.exit_code


def _update(args: argparse.Namespace, script_args: list[str], options: RunOptions) -> int:
    """Record the baseline and print what was recorded."""
    from plumber.gate import api
    from plumber.gate.markdown import recorded_summary

    measured = api.record(args.target, args.baseline, script_args, options, say)
    write_now(sys.stdout, recorded_summary(measured, str(args.baseline)))
    return exitcodes.OK


def _check_target(args: argparse.Namespace) -> str | None:
    """A one-line reason why the target or the flags cannot work together, or None."""
    from plumber.capture.scriptrun import check_script
    from plumber.gate.api import is_profile
    from plumber.records.files import OutputError, existing

    if not is_profile(args.target):
        return check_script(args.target)
    try:
        status = existing(args.target, "the profile")
    except OutputError as exc:  # a name too long, a loop of links
        return str(exc)
    if status is None or not stat.S_ISREG(status.st_mode):
        return f"no such profile: {args.target}"
    script_only = [flag for flag, value in (
        ("SCRIPT_ARGS", args.script_args), ("--repeats", args.repeats),
        ("--steps", args.steps), ("--duration", args.duration),
        ("--cpu-probe", args.cpu_probe), ("--output", args.output),
    ) if value not in (None, [])]
    if script_only:
        return f"{', '.join(script_only)} only apply when gating a script, not a saved profile"
    return None


def _check_outputs(args: argparse.Namespace) -> str | None:
    """A one-line reason why an output cannot be written, or None; outputs made absolute.

    The baseline is an output with ``--update`` (and may then replace only a
    baseline), else an input; no output may overwrite the target or the
    baseline read, and ``--output`` must be a folder whose ``run-N`` folders
    take a run's files (a run refusing its folder would read as the script
    failing).
    """
    from plumber.commands.profile import RUN_FILES
    from plumber.gate.api import is_profile
    from plumber.gate.baseline import is_baseline_file
    from plumber.gate.runner import RunOptions, run_folder
    from plumber.records.files import OutputError, checked_output_folder, checked_outputs

    outputs = {"JUnit XML report": args.junit_xml} if args.junit_xml is not None else {}
    inputs = {"profile" if is_profile(args.target) else "script": args.target}
    if args.update:
        outputs["baseline"] = args.baseline
        if args.baseline.is_file() and not is_baseline_file(args.baseline):
            return (f"--update would replace {args.baseline}, which is not a plumber gate "
                    f"baseline; give a new file name or remove it first")
    else:
        inputs["baseline"] = args.baseline
    try:
        written = checked_outputs(outputs, inputs)
        if args.output is not None:
            args.output = checked_output_folder(args.output, {})
            for repeat in range(1, (args.repeats or RunOptions().repeats) + 1):
                checked_output_folder(run_folder(args.output, repeat), RUN_FILES)
    except OutputError as exc:
        return str(exc)
    args.junit_xml = written.get("JUnit XML report")
    args.baseline = written.get("baseline", args.baseline)
    return None



def _error(reason: str, code: int, junit: Path | None = None, name: str = "") -> int:
    """Print the one-line reason, write it as a JUnit error when asked, return ``code``."""
    say(f"error: {reason}")
    if junit is not None:
        from plumber.gate.junit import error_junit

        _write(junit, error_junit(name, reason))
    return code


def _write(path: Path, text: str) -> None:
    from plumber.records.files import write_text_atomically

    write_text_atomically(path, text)
