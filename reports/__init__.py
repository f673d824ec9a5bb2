"""Renderers: turn a Profile and its Diagnoses into reports people read.

``html`` writes the self-contained HTML report, ``terminal`` the summary
printed when a run ends. Renderers read only :mod:`plumber.record` and
:mod:`plumber.analyzers.results`, never the instrumentation, so a saved
profile re-renders anywhere.
"""

from plumber.reports.html import render_html, write_html
from plumber.reports.terminal import render_summary

__all__ = ["render_html", "render_summary", "write_html"]
