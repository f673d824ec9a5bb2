"""Numbers with units, formatted the same way in every report.

Reports show three significant digits and an SI prefix (``12.3 ms``,
``45 MB/s``) so a reader compares magnitudes at a glance. Rates are worded
as the analysis words them (:func:`plumber.analyzers.text.rate`:
``45.6/s``, ``12,345/s``), as its sentences sit beside them on one page. A
value that was not measured is ``None`` (or NaN after a JSON round trip)
and prints as an em dash: absence is shown, never a made-up zero.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from plumber.analyzers import text

MISSING = "\u2014"
#: A rate that limits nothing (shown by the charts as well as by :func:`rate`).
UNBOUNDED = text.UNBOUNDED
_SI_PREFIXES = ("", "k", "M", "G", "T", "P")


def is_number(value: float | None) -> TypeGuard[float]:
    """True for a finite number (``None``, NaN and infinities are not)."""
    return value is not None and math.isfinite(value)


def _sig(value: float) -> str:
    """Three significant digits, no exponent for the range reports use."""
    if value == 0:
        return "0"
    written = f"{value:.3g}"
    if "e" in written:
        return f"{value:.2e}" if abs(value) < 1e-3 else f"{value:,.0f}"
    return written


def _si(value: float | None, unit: str) -> str:
    """``value`` scaled by powers of 1000 with an SI prefix before ``unit``."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "\u221e" if value > 0 else "-\u221e"
    index = 0
    scaled = value
    while index < len(_SI_PREFIXES) - 1 and abs(float(f"{scaled:.3g}")) >= 1000:
        index += 1
        scaled = value / 1000**index
    return f"{_sig(scaled)} {_SI_PREFIXES[index]}{unit}"


def rate(value: float | None) -> str:
    """Root elements (or items) per second: ``45.6/s``, ``12,345/s``.

    An infinite rate is a stage or bound that limits nothing (a pass-through
    prefetch): it reads ``unbounded``, which a reader understands and
    an ``∞/s`` is not.
    """
    if value is None or math.isnan(value):
        return MISSING
    return text.rate(value)


def size(value: float | None) -> str:
    """Bytes in decimal units: ``512 B``, ``45 MB``."""
    return _si(value, "B")


def bandwidth(value: float | None) -> str:
    """Bytes per second in decimal units: ``45 MB/s``."""
    return _si(value, "B/s")


def seconds(value: float | None) -> str:
    """A duration with the unit that keeps it readable (µs, ms, s, min, h)."""
    if not is_number(value):
        return MISSING
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1e-3:
        return f"{_sig(value * 1e6)} \u00b5s"
    if magnitude < 1:
        return f"{_sig(value * 1e3)} ms"
    if magnitude < 60:
        return f"{_sig(value)} s"
    minutes, secs = divmod(round(magnitude), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def milliseconds(value: float | None) -> str:
    """Seconds shown in ms regardless of size, for columns compared row by row."""
    return f"{_sig(value * 1e3)} ms" if is_number(value) else MISSING


def fraction(value: float | None) -> str:
    """A share in [0, 1] as a percentage: ``3.4%``, ``62%``."""
    return percent(value * 100) if is_number(value) else MISSING


def percent(value: float | None) -> str:
    """A value already in percent: one decimal below 10, whole numbers above."""
    if not is_number(value):
        return MISSING
    if value == 0:
        return "0%"
    return f"{value:.1f}%" if abs(value) < 10 else f"{value:.0f}%"


def speedup(value: float | None) -> str:
    """A ratio of rates: ``3.7×``."""
    return f"{_sig(value)}\u00d7" if is_number(value) else MISSING


def count(value: int | float | None) -> str:
    """An element count with thousands separators: ``12,345``."""
    return f"{value:,.0f}" if is_number(value) else MISSING


def counted(value: int, noun: str) -> str:
    """A count with its noun, singular for one: ``1 sample``, ``1,200 samples``."""
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


def number(value: float | None) -> str:
    """A plain quantity (visit ratio, parallelism) to three significant digits."""
    return _sig(value) if is_number(value) else MISSING
