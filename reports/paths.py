"""Source paths in the HTML report: the file's name to read, the full path on hover.

A profile records absolute paths, and a stage built in
``/home/me/project/src/pkg/data/input.py`` fills a graph node or a table
column with directories before the part a reader looks for. The report
shows ``input.py:41`` and keeps the full path in a ``title`` tooltip. The
analysis writes paths into its sentences too (``map-0 (map at
/home/.../input.py:41)``); :func:`shorten_paths` rewrites those, escaping
everything else, so the whole page names files one way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from markupsafe import Markup, escape

from plumber.records.profile import SourceLocation
from plumber.reports.svg import element


def short_source(location: SourceLocation | None) -> str:
    """``input.py:41``: the file's name and line, or an empty string when unknown."""
    if location is None:
        return ""
    return f"{os.path.basename(location.file) or location.file}:{location.line}"


def full_source(location: SourceLocation | None) -> str:
    """``/home/me/src/input.py:41``: the path as recorded, for the tooltip."""
    return f"{location.file}:{location.line}" if location is not None else ""


def path_span(location: SourceLocation) -> Markup:
    """``<span class="path" title="full">short</span>`` for one source location.

    A stage a library built keeps the library's function after the line, as
    ``str(location)`` writes it: ``train.py:40 via keras image_dataset_from_directory``.
    """
    attrs = {"class": "path", "title": full_source(location)}
    via = f" via {location.builder}" if location.built_by else ""
    return element("span", attrs, short_source(location) + via)


def shorten_paths(text: str, locations: Iterable[SourceLocation]) -> Markup:
    """``text`` escaped, with each ``file:line`` of ``locations`` shown as a short path span.

    A location is found as the analysis writes it (``str(location)``, relative
    to the working directory when inside it) and as recorded (absolute). A
    line number is matched whole: ``input.py:4`` does not match in ``input.py:41``.
    """
    spans: dict[str, Markup] = {}
    for location in locations:
        for written in (str(location), full_source(location)):
            spans[str(escape(written))] = path_span(location)
    escaped = str(escape(text))
    if not spans:
        return Markup(escaped)
    needles = sorted(spans, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(map(re.escape, needles)) + r")(?!\d)")
    return Markup(pattern.sub(lambda match: str(spans[match.group(0)]), escaped))
