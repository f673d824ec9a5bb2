"""Analyse a Profile and write what a user reads: HTML report and summary.

Shared by ``plumber profile`` (fresh run) and ``plumber report`` (saved
profile), so both produce exactly the same report from the same record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plumber.analyzers.diagnose import diagnose_all
from plumber.analyzers.results import Diagnosis
from plumber.records.profile import Profile
from plumber.reports.html import write_html
from plumber.reports.terminal import render_summary


@dataclass(frozen=True)
class Rendered:
    """Where the report went, the analysis behind it, and the terminal text."""

    report_path: Path
    diagnoses: tuple[Diagnosis, ...]
    summary: str


def render(profile: Profile, report_path: Path, profile_path: Path | None) -> Rendered:
    """Diagnose every pipeline of ``profile`` and write the HTML report."""
    diagnoses = tuple(diagnose_all(profile))
    write_html(report_path, profile, diagnoses)
    summary = render_summary(
        profile, diagnoses, report_path=report_path, profile_path=profile_path
    )
    return Rendered(report_path=report_path, diagnoses=diagnoses, summary=summary)
