"""How numbers read: the one wording of a rate, a duration and a size.

The analysis, the reports, the plan's outcomes and the runtime caches' log
lines all word numbers through these, so a rate reads the same everywhere.
"""

from __future__ import annotations

import math

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
