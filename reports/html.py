"""The HTML report: one self-contained file that answers what is slow and what to change.

The page is rendered from Jinja2 templates shipped in ``templates/`` with
autoescaping always on, so the user's stage names, paths, command line and
error messages are escaped wherever they appear. Figures are inline SVG
built in Python and styles are inline CSS: the file opens offline, from
an e-mail attachment or a CI artifact, and fetches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2

from plumber.analyzers.results import Diagnosis
from plumber.records.files import write_text_atomically
from plumber.records.plan import Plan
from plumber.records.profile import Profile
from plumber.reports.context import report_view


@cache
def _environment() -> jinja2.Environment:
    """The template environment; autoescape is on for every template, whatever its name."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("plumber.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(
    profile: Profile, diagnoses: Sequence[Diagnosis], plan: Plan | None = None
) -> str:
    """The report of ``profile`` as one HTML document.

    ``diagnoses`` holds the analysis of the profile's pipelines, matched by
    ``pipeline_id``; a pipeline without one is still drawn, marked as not
    analysed. A failed or interrupted run is reported at the top, above
    whatever it collected. ``plan`` (from ``plumber tune``) adds, per
    pipeline it tunes, the plan as source edits with what verification measured.
    """
    template = _environment().get_template("report.html.j2")
    return template.render(report=report_view(profile, diagnoses, plan))


def write_html(
    path: str | Path, profile: Profile, diagnoses: Sequence[Diagnosis], plan: Plan | None = None
) -> Path:
    """Render the report and write it to ``path`` atomically (parents created); return the path."""
    return write_text_atomically(path, render_html(profile, diagnoses, plan))
