"""Renderers: turn a Profile and its Diagnoses into reports people read.

``html`` writes the self-contained HTML report, ``terminal`` the summary
printed when a run ends. Renderers read only :mod:`plumber.records.profile` and
:mod:`plumber.analyzers.results`, never the instrumentation, so a saved
profile re-renders anywhere.
"""

from typing import Any

#: Where each public renderer lives; loaded on first access, so importing one
#: renderer module (or this package) does not load jinja2 with ``html``.
_PUBLIC = {
    "render_html": "plumber.reports.html",
    "write_html": "plumber.reports.html",
    "render_summary": "plumber.reports.terminal",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'plumber.reports' has no attribute {name!r}")
