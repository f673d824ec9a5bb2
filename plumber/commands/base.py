"""What every subcommand provides."""

from __future__ import annotations

import argparse
import sys
from typing import Protocol


class Command(Protocol):
    """A subcommand: its name, help text, arguments and ``run`` returning an exit code."""

    name: str
    help: str
    description: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def say(message: str) -> None:
    """A progress or status line for the user, on stderr so script output stays clean."""
    print(f"plumber: {message}", file=sys.stderr, flush=True)


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
