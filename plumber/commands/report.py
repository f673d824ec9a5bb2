"""``plumber report PROFILE.json [PROFILE.json ...]``: re-render saved profiles, no re-run.

One profile gets its report, as ``plumber profile`` wrote it. Several are
the hosts of one data-parallel job: they get one multi-host report
(:mod:`plumber.reports.hosts`) that names the slowest host and what differs
on it; profiles of different jobs are refused.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from plumber.capture.stdio import write_now
from plumber.commands.base import say
from plumber.records import exitcodes

#: The multi-host report's file name, in the folder the profiles share, unless -o says.
HOSTS_REPORT = "hosts-report.html"


class ReportCommand:
    name = "report"
    help = "re-render the HTML report of a saved profile, or compare the hosts of one job"
    description = (
        "Analyse a saved profile.json again and write its HTML report. Given several "
        "profiles, one per host of a data-parallel job, write one report that puts the "
        "hosts side by side, names the slowest (in synchronous training it holds every "
        "host at its pace) and the differences in machine or stage statistics that "
        "explain it. Hosts are named by their profiles' file names; profiles of "
        "different jobs (other pipelines or framework) are refused."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "profiles", type=Path, nargs="+", metavar="PROFILE.json",
            help="a profile.json written by plumber; several: one per host of one job",
        )
        parser.add_argument(
            "-o", "--output", type=Path, default=None,
            help="HTML file to write (default: report.html beside the profile; for several "
            f"profiles {HOSTS_REPORT} in the folder they share)",
        )

    def run(self, args: argparse.Namespace) -> int:
        if len(args.profiles) == 1:
            return _one_profile(args.profiles[0], args.output)
        return _hosts(args.profiles, args.output)


def _one_profile(path: Path, output: Path | None) -> int:
    """The report of one saved profile, as ``plumber profile`` writes it."""
    from plumber.records.files import OutputError, checked_outputs
    from plumber.records.profile import Profile, ProfileFormatError, ProfileVersionError
    from plumber.reports.outputs import render

    try:
        report_path = checked_outputs(
            {"report": output or beside([path], "report.html")}, {"profile": path},
        )["report"]
        profile = Profile.load(path)
    except (ProfileFormatError, ProfileVersionError, OutputError) as exc:
        say(f"error: {exc}")
        return exitcodes.USAGE
    try:
        rendered = render(profile, report_path, path)
    except OSError as exc:
        say(f"error: the report could not be written: {exc}")
        return exitcodes.USAGE
    write_now(sys.stdout, rendered.summary + "\n")
    return exitcodes.OK


def _hosts(paths: list[Path], output: Path | None) -> int:
    """One report for the hosts of a data-parallel job, a profile each."""
    from plumber.analyzers.hosts import compare_hosts, names_from_files
    from plumber.records.files import OutputError, checked_outputs, same_file
    from plumber.records.profile import Profile, ProfileFormatError, ProfileVersionError
    from plumber.reports.hosts import hosts_summary, write_hosts_html

    for index, path in enumerate(paths):
        if any(same_file(path, earlier) for earlier in paths[:index]):
            say(f"error: {path} is given twice: give each host's profile once")
            return exitcodes.USAGE
    try:
        report_path = checked_outputs(
            {"report": output or beside(paths, HOSTS_REPORT)},
            {f"profile #{number}": path for number, path in enumerate(paths, 1)},
        )["report"]
        profiles = [Profile.load(path) for path in paths]
        comparison = compare_hosts(names_from_files(paths), profiles)
    except (ProfileFormatError, ProfileVersionError, OutputError, ValueError) as exc:
        say(f"error: {exc}")
        return exitcodes.USAGE
    try:
        write_hosts_html(report_path, comparison)
    except OSError as exc:
        say(f"error: the report could not be written: {exc}")
        return exitcodes.USAGE
    write_now(sys.stdout, hosts_summary(comparison, report_path) + "\n")
    return exitcodes.OK


def beside(profiles: list[Path], name: str) -> Path:
    """The file ``name`` in the folder the profiles share; OutputError when one has no folder.

    A profile read from a pipe or a device (``/dev/stdin``, a FIFO) is in no
    folder of the user's: beside it is ``/dev``, where ``report`` run as root
    wrote ``/dev/report.html``. It is checked before the pipe is read.
    """
    from plumber.records.files import OutputError, existing

    for profile in profiles:
        status = existing(profile, "a profile")
        if status is not None and not stat.S_ISREG(status.st_mode):
            raise OutputError(f"{profile} is not a regular file (a pipe or a device), so no "
                              f"folder holds it to write {name} in; give the report's path "
                              f"with -o")
    return Path(os.path.commonpath([os.path.abspath(p.parent) for p in profiles])) / name
