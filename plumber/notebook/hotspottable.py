"""``ProfileResult.hotspots``: each stage's top Python functions as a DataFrame (``--hotspots``).

One row per (pipeline, stage, function), in base units like the other
tables: samples, shares of the stage's samples (0 to 1), and thread seconds.
The training loop's rows have an empty ``pipeline`` and the stage
``consumer``. Library code a stage ran with no function of the user's on the
stack (a torchvision dataset decoding with PIL) comes after the stage's
functions, as rows with an empty ``function`` and ``file`` and the call in
``library``. Empty (with its columns) when the profile holds no samples.
"""

from __future__ import annotations

import math
from typing import Any

from plumber.analyzers.hotspots import Hotspots, StageHotspots, hotspots
from plumber.notebook._optional import require
from plumber.records.profile import Profile

pd = require("pandas", "plumber's DataFrames")

HOTSPOT_COLUMNS = (
    "pipeline", "stage", "function", "file", "line", "self_samples", "total_samples",
    "self_share", "total_share", "computing_share", "self_s", "library",
)


def hotspots_frame(profile: Profile) -> pd.DataFrame:
    """The top functions of every sampled stage, hottest (computing self samples) first,
    then its library calls outside them."""
    found = hotspots(profile)
    rows = []
    for stage in found.stages if found is not None else ():
        for f in stage.functions:
            rows.append(_row(found, stage, f.function, f.file, f.line, f.self_samples,
                             f.total_samples, f.computing_samples, f.library))
        for call in stage.library_calls:
            rows.append(_row(found, stage, "", "", None, call.samples, call.samples,
                             call.computing_samples, call.call))
    return pd.DataFrame(rows, columns=list(HOTSPOT_COLUMNS))


def _row(found: Hotspots, stage: StageHotspots, function: str, file: str, line: int | None,
         self_samples: int, total_samples: int, computing: int, library: str) -> dict[str, Any]:
    """One row of :data:`HOTSPOT_COLUMNS`: a function of ``stage``, or a library call of it."""
    return {
        "pipeline": stage.pipeline, "stage": stage.stage, "function": function, "file": file,
        "line": line, "self_samples": self_samples, "total_samples": total_samples,
        "self_share": stage.share(self_samples), "total_share": stage.share(total_samples),
        "computing_share": computing / self_samples,
        "self_s": self_samples / found.rate_hz if found.rate_hz > 0 else math.nan,
        "library": library,
    }
