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
