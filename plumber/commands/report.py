"""``plumber report PROFILE.json``: re-render a saved profile, no re-run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plumber.capture.stdio import write_now
from plumber.records import exitcodes


class ReportCommand:
    name = "report"
    help = "re-render the HTML report and summary of a saved profile"
    description = "Analyse a saved profile.json again and write its HTML report."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("profile", type=Path, help="a profile.json written by plumber")
        parser.add_argument(
            "-o", "--output", type=Path, default=None,
            help="HTML file to write (default: report.html beside the profile)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from plumber.records.files import OutputError, checked_outputs
        from plumber.records.profile import Profile, ProfileFormatError, ProfileVersionError
        from plumber.reports.outputs import render

        try:
            profile = Profile.load(args.profile)
            report_path = checked_outputs(
                {"report": args.output or args.profile.with_name("report.html")},
                {"profile": args.profile},
            )["report"]
        except (ProfileFormatError, ProfileVersionError, OutputError) as exc:
            print(f"plumber: error: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        try:
            rendered = render(profile, report_path, args.profile)
        except OSError as exc:
            print(f"plumber: error: the report could not be written: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        write_now(sys.stdout, rendered.summary + "\n")
        return exitcodes.OK
