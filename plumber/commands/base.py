"""What every subcommand provides."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from plumber.capture.stdio import write_now
from plumber.measure.runbounds import checked_cpu_probe, checked_duration


class Command(Protocol):
    """A subcommand: its name, help text, arguments and ``run`` returning an exit code."""

    name: str
    help: str
    description: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def say(message: str) -> None:
    """A progress or status line for the user, on stderr so script output stays clean."""
    write_now(sys.stderr, f"plumber: {message}\n")


def add_script_arguments(parser: argparse.ArgumentParser, verb: str = "run") -> None:
    """SCRIPT and the script's own arguments (after ``--``)."""
    parser.add_argument("script", type=Path, metavar="SCRIPT", help=f"the Python script to {verb}")
    add_script_args_after_separator(parser)


def add_script_args_after_separator(parser: argparse.ArgumentParser) -> None:
    """``[-- SCRIPT_ARGS ...]``: the script's arguments, everything after the first ``--``.

    :func:`plumber.cli.parse_command_line` splits the command line at ``--``
    and sets ``script_args`` to what follows; this argument puts the syntax
    in the usage line and ``--help``.
    """
    parser.add_argument(
        "script_args", nargs="*", metavar="-- SCRIPT_ARGS",
        help="the script's own arguments: everything after --, passed on unchanged. "
        "plumber's options go anywhere before --; an option plumber does not know, or a "
        "word after SCRIPT, before -- is an error",
    )


def add_keep_secrets(parser: argparse.ArgumentParser) -> None:
    """``--keep-secrets``: record secret-looking script arguments as given (records.redact)."""
    parser.add_argument(
        "--keep-secrets", action="store_true",
        help="record the script's arguments as given in profile.json and report.html; by "
        "default the values of arguments named like secrets (--token, --api-key, "
        "--password, ...) and URL credentials are replaced by REDACTED",
    )


def add_run_bounds(parser: argparse.ArgumentParser) -> None:
    """``--steps``, ``--duration`` and ``--cpu-probe``: how much of a run is profiled."""
    parser.add_argument(
        "--steps", type=positive_int, default=None,
        help="stop the script after this many elements reach the consumer",
    )
    parser.add_argument(
        "--duration", type=duration_seconds, default=None,
        help="stop the script after this many seconds",
    )
    parser.add_argument(
        "--cpu-probe", type=cpu_probe_seconds, default=2.0, metavar="SECONDS",
        help="time spent after the run measuring per-stage CPU (0 disables; default 2)",
    )


def script_unusable(script: Path) -> bool:
    """Print the one-line reason and return True when ``script`` cannot be run."""
    from plumber.capture.scriptrun import check_script

    problem = check_script(script)
    if problem is not None:
        say(f"error: {problem}")
    return problem is not None


def positive_int(text: str) -> int:
    """argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def duration_seconds(text: str) -> float:
    """argparse type: ``--duration`` (:func:`plumber.measure.runbounds.checked_duration`)."""
    return _bound(checked_duration, float(text))


def link_bandwidth(text: str) -> float:
    """argparse type: ``--link-bandwidth`` (:func:`plumber.records.units.link_rate_bps`)."""
    from plumber.records.units import link_rate_bps

    try:
        return link_rate_bps(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cpu_probe_seconds(text: str) -> float:
    """argparse type: ``--cpu-probe`` (:func:`plumber.measure.runbounds.checked_cpu_probe`)."""
    return _bound(checked_cpu_probe, float(text))


def _bound(check: Callable[[float], float], value: float) -> float:
    try:
        return check(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def hotspots_rate(text: str) -> int:
    """argparse type: ``--hotspots-rate`` (:func:`plumber.measure.hotspots.checked_rate_hz`)."""
    from plumber.measure.hotspots import checked_rate_hz

    return int(_bound(checked_rate_hz, float(text)))


def non_negative_int(text: str) -> int:
    """argparse type: zero or a positive integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or a positive integer")
    return value
