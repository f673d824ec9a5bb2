"""Short number and stage phrasings for the sentences the analysis writes.

Summaries, bound details and what-if reasons are read by people; three
significant digits and a unit are enough to compare magnitudes.
"""

from __future__ import annotations

from plumber.records.kinds import AUTOTUNE, POOL
from plumber.records.profile import Stage
from plumber.records.units import UNBOUNDED, ms, rate, size

__all__ = ["UNBOUNDED", "ms", "parallel_knob", "parallelism_change", "rate", "size", "where"]

def where(stage: Stage) -> str:
    """``map-0 (map at train.py:12)``: a stage as a user finds it in their code."""
    place = f"{stage.kind} at {stage.source}" if stage.source is not None else stage.kind
    return f"{stage.id} ({place})"


def parallel_knob(stage: Stage) -> tuple[str, str]:
    """The knob that sets ``stage``'s parallelism, and its value as written.

    A worker pool's is ``num_workers`` (0 runs the work in the main process);
    elsewhere ``parallelism``, unset (``None``) or AUTOTUNE (``-1``).
    """
    if stage.kind == POOL:
        return "num_workers", str(stage.knobs.get("num_workers", stage.knobs.get("parallelism")))
    value = stage.knobs.get("parallelism")
    written = "None" if value is None else "AUTOTUNE" if value == AUTOTUNE else str(value)
    return "parallelism", written



def parallelism_change(stage: Stage, running: float, value: int) -> str:
    """``num_parallel_calls 2 -> 4 at train.py:12``: a what-if's parallelism change.

    A worker pool shows ``num_workers`` as written; any other stage the
    parallelism it ran with (``running``: autotuned, or inherited when nested).
    """
    knob, current = parallel_knob(stage)
    if stage.kind != POOL:
        current = f"{running:g}"
    return f"{knob} {current} -> {value} at {where(stage)}"
