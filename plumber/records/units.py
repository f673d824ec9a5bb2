"""How numbers read: the one wording of a rate, a duration and a size.

The analysis, the reports, the plan's outcomes and the runtime caches' log
lines all word numbers through these, so a rate reads the same everywhere.
"""

from __future__ import annotations

import math
import re

#: A rate that limits nothing (a pass-through stage, a bound with no demand).
UNBOUNDED = "unbounded"


def rate(value: float) -> str:
    """``1.23/s``, ``123/s``, ``12,345/s``; an unknown rate is ``?/s``.

    The one wording of a rate: the reports and the plan's outcomes use it too.
    """
    if not math.isfinite(value):
        return "?/s" if math.isnan(value) else UNBOUNDED
    return f"{value:,.0f}/s" if value >= 1000 else f"{value:.3g}/s"


def ms(seconds: float) -> str:
    """Seconds as milliseconds: ``12.3 ms``."""
    return f"{seconds * 1e3:.3g} ms"


def size(num_bytes: float) -> str:
    """Bytes with a decimal prefix: ``512 B``, ``45.1 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(num_bytes) < 1000:
            return f"{num_bytes:.3g} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.3g} TB"


_LINK_RATE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kMGT]?)(b|B|bit)/s")
_PREFIX = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def link_rate_bps(text: str) -> float:
    """A network link's rate written as ``10Gb/s``, ``100 Mbit/s`` or ``1.25GB/s``, in bytes/s.

    ``b`` and ``bit`` are bits, ``B`` bytes; prefixes are decimal. ValueError
    for anything else, zero included.
    """
    match = _LINK_RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a link rate such as 10Gb/s, 100Mbit/s or 1.25GB/s: {text!r}")
    number, prefix, unit = match.groups()
    value = float(number) * _PREFIX[prefix] / (1 if unit == "B" else 8)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"a link rate must be above zero: {text!r}")
    return value
