"""What every subcommand provides."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Protocol

from plumber.stdio import write_now


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
    parser.add_argument("script", type=Path, help=f"the Python script to {verb}")
    parser.add_argument(
        "script_args", nargs=argparse.REMAINDER, help="arguments for the script (after --)"
    )


def add_run_bounds(parser: argparse.ArgumentParser) -> None:
    """``--steps``, ``--duration`` and ``--cpu-probe``: how much of a run is profiled."""
    parser.add_argument(
        "--steps", type=positive_int, default=None,
        help="stop the script after this many elements reach the consumer",
    )
    parser.add_argument(
        "--duration", type=positive_float, default=None,
        help="stop the script after this many seconds",
    )
    parser.add_argument(
        "--cpu-probe", type=non_negative_float, default=2.0, metavar="SECONDS",
        help="time spent after the run measuring per-stage CPU (0 disables; default 2)",
    )


def script_unusable(script: Path) -> bool:
    """Print the one-line reason and return True when ``script`` cannot be run."""
    from plumber.scriptrun import check_script

    problem = check_script(script)
    if problem is not None:
        print(f"plumber: error: {problem}", file=sys.stderr)
    return problem is not None


def script_arguments(remainder: list[str]) -> list[str]:
    """The script's own arguments: what follows SCRIPT, without a leading ``--``."""
    return remainder[1:] if remainder[:1] == ["--"] else list(remainder)


def positive_int(text: str) -> int:
    """argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above zero."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: zero or a positive number."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be zero or a positive number")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: zero or a positive integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or a positive integer")
    return value
