"""The profile's tables as pandas DataFrames, one row per stage, bound, what-if or sample.

Columns hold plain numbers in base units (seconds, bytes, root elements
per second) so they sort, filter and plot directly; a value that was not
measured is NaN, never zero. Every table has a ``pipeline`` column, since a
run can iterate several pipelines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from plumber.analyzers.results import Diagnosis
from plumber.notebook._optional import require
from plumber.records.profile import Profile, TimeSeries
from plumber.reports.view import (
    analyses_by_stage,
    bottleneck_stage_id,
    diagnosis_for,
    knob_items,
    source_text,
    unmeasured_reason,
)

pd = require("pandas", "plumber's DataFrames")

STAGE_COLUMNS = (
    "pipeline", "stage", "kind", "op", "source", "knobs", "written", "rewrite", "elements",
    "parallelism", "visit_ratio", "cpu_per_root_s", "wall_per_root_s", "max_rate",
    "wait_fraction", "resource", "bottleneck", "note",
)
BOUND_COLUMNS = ("pipeline", "bound", "kind", "rate", "stage", "binding", "detail")
WHAT_IF_COLUMNS = (
    "pipeline", "stage", "knob", "value", "change", "predicted_rate", "speedup", "feasible",
    "reason",
)

#: Resource series and their DataFrame column names; per-core CPU is spread
#: over ``core<i>_percent`` columns.
_RESOURCE_COLUMNS = (
    "cpu_percent", "process_cpu_percent", "disk_read_bps", "net_recv_bps", "net_sent_bps",
    "memory_used_bytes", "process_rss_bytes", "gpu_util_percent", "gpu_memory_used_bytes",
)


def _number(value: float | None) -> float:
    return float(value) if value is not None else math.nan


def stages_frame(profile: Profile, diagnoses: Sequence[Diagnosis]) -> pd.DataFrame:
    """One row per stage of every pipeline, in the record's order (inputs first)."""
    rows = []
    for pipeline in profile.pipelines:
        diagnosis = diagnosis_for(pipeline, diagnoses)
        analyses = analyses_by_stage(diagnosis)
        bottleneck = bottleneck_stage_id(diagnosis) if diagnosis is not None else None
        for stage in pipeline.stages:
            a = analyses.get(stage.id)
            rows.append({
                "pipeline": pipeline.id,
                "stage": stage.id,
                "kind": stage.kind,
                "op": stage.op,
                "source": source_text(stage.source) or None,
                "knobs": ", ".join(knob_items(stage)),
                "written": stage.written,
                "rewrite": stage.rewrite,
                "elements": stage.stats.elements if stage.stats is not None else None,
                "parallelism": _number(a.parallelism if a else None),
                "visit_ratio": _number(a.visit_ratio if a else None),
                "cpu_per_root_s": _number(a.cpu_demand_s if a else None),
                "wall_per_root_s": _number(a.wall_demand_s if a else None),
                "max_rate": _number(a.max_rate if a else None),
                "wait_fraction": _number(a.wait_fraction if a else None),
                "resource": a.resource if a else "unmeasured",
                "bottleneck": stage.id == bottleneck,
                "note": unmeasured_reason(stage, a) or (a.note if a else "") or None,
            })
    frame = pd.DataFrame(rows, columns=list(STAGE_COLUMNS))
    return frame.astype({"elements": "Int64", "written": bool, "bottleneck": bool})


#: Columns that show an attribute of another name (a bound's ``name``, a ``stage_id``).
_ATTRIBUTES = {"bound": "name", "stage": "stage_id"}


def _fields(item: object, columns: Sequence[str]) -> dict[str, object]:
    """A row's ``columns`` read from the attributes of a bound or what-if."""
    return {column: getattr(item, _ATTRIBUTES.get(column, column)) for column in columns}


def bounds_frame(diagnoses: Sequence[Diagnosis]) -> pd.DataFrame:
    """Every bound on every pipeline's rate, slowest first; ``binding`` marks the bottleneck."""
    shown = ("bound", "kind", "rate", "stage", "detail")
    rows = [
        {"pipeline": d.pipeline_id, "binding": b == d.bottleneck, **_fields(b, shown)}
        for d in diagnoses
        for b in sorted(d.bounds, key=lambda b: b.rate)
    ]
    return pd.DataFrame(rows, columns=list(BOUND_COLUMNS)).astype({"binding": bool})


def what_if_frame(diagnoses: Sequence[Diagnosis]) -> pd.DataFrame:
    """Every change the model evaluated, best first; infeasible ones say why."""
    rows = [
        {"pipeline": d.pipeline_id, **_fields(w, WHAT_IF_COLUMNS[1:])}
        for d in diagnoses
        for w in d.what_ifs
    ]
    return pd.DataFrame(rows, columns=list(WHAT_IF_COLUMNS)).astype({"feasible": bool})


def resources_frame(series: TimeSeries) -> pd.DataFrame:
    """The samples, indexed by ``t_s`` (seconds since the start); absent sensors are left out."""
    length = len(series.t)
    columns: dict[str, Sequence[float]] = {}
    for name in _RESOURCE_COLUMNS:
        values = getattr(series, name)
        if len(values) == length and length > 0:
            columns[name] = values
    cores = series.per_core_percent
    if len(cores) == length and length > 0:
        for i in range(min(len(sample) for sample in cores)):
            columns[f"core{i}_percent"] = [sample[i] for sample in cores]
    index = pd.Index(series.t, name="t_s", dtype=float)
    return pd.DataFrame(columns, index=index, dtype=float)
