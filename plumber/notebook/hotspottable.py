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

from plumber.analyzers.hotspots import hotspots
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
            rows.append({
                "pipeline": stage.pipeline, "stage": stage.stage, "function": f.function,
                "file": f.file, "line": f.line, "self_samples": f.self_samples,
                "total_samples": f.total_samples,
                "self_share": stage.share(f.self_samples),
                "total_share": stage.share(f.total_samples),
                "computing_share": f.computing_samples / f.self_samples,
                "self_s": f.self_samples / found.rate_hz if found.rate_hz > 0 else math.nan,
                "library": f.library,
            })
        for call in stage.library_calls:
            rows.append({
                "pipeline": stage.pipeline, "stage": stage.stage, "function": "", "file": "",
                "line": None, "self_samples": call.samples, "total_samples": call.samples,
                "self_share": stage.share(call.samples),
                "total_share": stage.share(call.samples),
                "computing_share": call.computing_samples / call.samples,
                "self_s": call.samples / found.rate_hz if found.rate_hz > 0 else math.nan,
                "library": call.call,
            })
    return pd.DataFrame(rows, columns=list(HOTSPOT_COLUMNS))
