"""The multi-host comparison as pandas DataFrames: the hosts, and what differs on the slowest.

As in :mod:`plumber.notebook.tables`, columns hold plain numbers in base
units (root elements per second, seconds, bytes) and a value that was not
measured is NaN; every table has a ``pipeline`` column.
"""

from __future__ import annotations

import math

from plumber.analyzers.hosts import HostComparison
from plumber.notebook._optional import require
from plumber.reports.view import bottleneck_stage_id

pd = require("pandas", "plumber's DataFrames")

HOST_COLUMNS = (
    "pipeline", "host", "observed_rate", "stall_share", "input_bound", "bottleneck_stage",
    "bottleneck_kind", "slowest",
)


def hosts_frame(comparison: HostComparison) -> pd.DataFrame:
    """One row per pipeline and host."""
    rows = [
        {
            "pipeline": pipeline.pipeline_id,
            "host": run.host,
            "observed_rate": run.diagnosis.observed_rate,
            "stall_share": _number(run.diagnosis.stall_share),
            "input_bound": run.diagnosis.input_bound,
            "bottleneck_stage": bottleneck_stage_id(run.diagnosis),
            "bottleneck_kind": run.diagnosis.bottleneck_kind,
            "slowest": index == pipeline.slowest,
        }
        for pipeline in comparison.pipelines
        for index, run in enumerate(pipeline.runs)
    ]
    return pd.DataFrame(rows, columns=list(HOST_COLUMNS))


def differences_frame(comparison: HostComparison) -> pd.DataFrame:
    """One row per difference: where, what, the unit, ``worse_by``, then a column per host."""
    columns = ["pipeline", "subject", "stage", "quantity", "unit", "worse_by",
               *comparison.hosts]
    rows = [
        {
            "pipeline": pipeline.pipeline_id,
            "subject": difference.subject,
            "stage": difference.stage_id,
            "quantity": difference.quantity,
            "unit": difference.unit,
            "worse_by": difference.worse_by,
            **{host: _number(value)
               for host, value in zip(comparison.hosts, difference.values, strict=True)},
        }
        for pipeline in comparison.pipelines
        for difference in pipeline.differences
    ]
    return pd.DataFrame(rows, columns=columns)


def _number(value: float | None) -> float:
    """A measured value, NaN where there is none."""
    return math.nan if value is None else value
