"""The ``plumber`` command: one small command object per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from plumber import __version__, exitcodes
from plumber.commands.base import Command
from plumber.commands.gate import GateCommand
from plumber.commands.profile import ProfileCommand
from plumber.commands.report import ReportCommand
from plumber.commands.run import RunCommand
from plumber.commands.tune import TuneCommand

COMMANDS: tuple[Command, ...] = (
    ProfileCommand(), ReportCommand(), TuneCommand(), RunCommand(), GateCommand(),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plumber",
        description="Find and remove the bottlenecks of ML input pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"plumber {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command_parser = sub.add_parser(
            command.name, help=command.help, description=command.description
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(handler=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return exitcodes.USAGE
    return args.handler.run(args)


if __name__ == "__main__":
    sys.exit(main())
