"""Small SVG building blocks shared by the graph and the charts.

Reports draw their figures as inline SVG generated in Python: no script
library, nothing fetched, and the page still renders offline. Every element
is built through :func:`element`, which escapes attribute values and text,
so a stage name or file path from the user's program can never inject
markup. The result is a :class:`markupsafe.Markup`, which the
autoescaping template inserts as is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from markupsafe import Markup, escape

#: Average glyph width of the report's sans-serif font, in em; used only to
#: decide where to truncate labels, so an estimate is enough.
_GLYPH_EM = 0.52


def num(value: float) -> str:
    """A coordinate with at most one decimal, short to keep the file small."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def element(tag: str, attrs: Mapping[str, object] | None = None, *children: str | Markup) -> Markup:
    """``<tag attrs>children</tag>`` with values and plain-text children escaped.

    Floats are written through :func:`num`; an attribute whose value is
    ``None`` is left out. Children that are already :class:`Markup` (other
    elements) are kept as they are.
    """
    parts = [tag]
    for name, value in (attrs or {}).items():
        if value is None:
            continue
        text = num(value) if isinstance(value, float) else str(value)
        parts.append(f'{name}="{escape(text)}"')
    opening = " ".join(parts)
    if not children:
        return Markup(f"<{opening}/>")
    body = "".join(str(escape(child)) for child in children)
    return Markup(f"<{opening}>{body}</{tag}>")


def svg(width: float, height: float, label: str, *children: Markup, cls: str = "") -> Markup:
    """A root ``<svg>`` sized in CSS pixels that scales down with the page."""
    attrs = {
        "class": f"fig {cls}".strip(),
        "viewBox": f"0 0 {num(width)} {num(height)}",
        "width": float(width),
        "height": float(height),
        "role": "img",
        "aria-label": label,
    }
    return element("svg", attrs, *children)


def text(x: float, y: float, content: str, cls: str = "", anchor: str | None = None) -> Markup:
    """A ``<text>`` element (styled by the page's CSS through ``cls``)."""
    attrs = {"x": float(x), "y": float(y), "class": cls or None, "text-anchor": anchor}
    return element("text", attrs, content)


def title(content: str) -> Markup:
    """A ``<title>`` child: the browser shows it as a tooltip on hover."""
    return element("title", None, content)


def fit(content: str, width_px: float, font_px: float) -> str:
    """``content`` cut with an ellipsis so it fits ``width_px`` at ``font_px``."""
    max_chars = max(int(width_px / (font_px * _GLYPH_EM)), 2)
    if len(content) <= max_chars:
        return content
    return content[: max_chars - 1] + "\u2026"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (axis maxima)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power
