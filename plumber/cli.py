"""The ``plumber`` command: one small command object per subcommand.

Command-line convention (as pytest and py-spy have it): plumber's options
may come anywhere before ``--``, before or after SCRIPT; everything after
the first ``--`` goes to the script unchanged, and nothing else does. An
option plumber does not know, or a bare word after SCRIPT, before ``--``
is a one-line usage error (exit 2) that says to put the script's own
arguments after ``--``: passing it on silently would run the script with an
option plumber was meant to take, or drop one the script was meant to get.
Options are never abbreviated (``--dur`` is not ``--duration``), so a
script's option cannot be taken for one of plumber's by a prefix.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from collections.abc import Sequence

from plumber.commands.base import Command
from plumber.commands.gate import GateCommand
from plumber.commands.profile import ProfileCommand
from plumber.commands.report import ReportCommand
from plumber.commands.run import RunCommand
from plumber.commands.service import ServiceCommand
from plumber.commands.tune import TuneCommand
from plumber.records import exitcodes
from plumber.records.version import __version__

COMMANDS: tuple[Command, ...] = (
    ProfileCommand(), ReportCommand(), TuneCommand(), RunCommand(), GateCommand(),
    ServiceCommand(),
)

#: What separates plumber's arguments from the script's.
SEPARATOR = "--"


class UsageError(ValueError):
    """A command line plumber refuses; ``str()`` is the one-line reason."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plumber",
        description="Find and remove the bottlenecks of ML input pipelines.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"plumber {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command_parser = sub.add_parser(
            command.name, help=command.help, description=command.description,
            allow_abbrev=False,
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(handler=command)
    return parser


def split_at_separator(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """plumber's arguments and the script's: what comes before and after the first ``--``."""
    argv = list(argv)
    if SEPARATOR not in argv:
        return argv, []
    at = argv.index(SEPARATOR)
    return argv[:at], argv[at + 1:]


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line, ``script_args`` being exactly what follows ``--``.

    Raises :class:`UsageError` for an argument before ``--`` that plumber
    does not take; argparse's own errors (a missing or malformed value)
    exit with status 2 as usual.
    """
    ours, theirs = split_at_separator(argv)
    args, unknown = build_parser().parse_known_args(ours)
    if getattr(args, "handler", None) is None:
        return args
    command = f"plumber {args.command}"
    if not hasattr(args, "script_args"):
        if unknown or theirs:
            extra = shlex.join([*unknown, *([SEPARATOR, *theirs] if theirs else [])])
            raise UsageError(f"{command}: error: unrecognized arguments: {extra}")
        return args
    # The SCRIPT_ARGS positional only shows the syntax in --help; before the
    # split, the words it caught were bare words after SCRIPT.
    unrecognized = [*args.script_args, *unknown]
    if unrecognized:
        raise UsageError(
            f"{command}: error: unrecognized arguments: {shlex.join(unrecognized)}; put the "
            f"script's own arguments after --, as in: {command} [OPTIONS] SCRIPT -- "
            f"{shlex.join([*unrecognized, *theirs])}"
        )
    args.script_args = theirs
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_command_line(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.USAGE
    if getattr(args, "handler", None) is None:
        build_parser().print_help(sys.stderr)
        return exitcodes.USAGE
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """The command's exit status; an exception out of plumber is a bug, exit 70.

    The script's own exceptions never get here (the commands record them as
    its outcome), so what does is plumber's: its traceback is printed for a
    bug report and the status is :data:`plumber.records.exitcodes.INTERNAL`, which a
    script's small codes and Python's 1 for an uncaught exception cannot
    be taken for.
    """
    try:
        return args.handler.run(args)
    except Exception:  # noqa: BLE001 - every failure of plumber itself ends the same way
        traceback.print_exc()
        print(f"plumber: internal error in 'plumber {args.command}' (a bug in plumber; the "
              f"traceback is above)", file=sys.stderr)
        return exitcodes.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
