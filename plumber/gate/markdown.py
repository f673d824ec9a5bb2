"""The gate's Markdown summary, written for a CI job log or a job summary page.

Pure: takes the comparison (or the measurement just recorded) and returns
text. Every value a reader needs to judge the verdict is in the table:
baseline rate, the expectation after calibration, the measured median, the
change, and the bottleneck before and after.
"""

from __future__ import annotations

import math

from plumber.gate.baseline import Measurement, PipelineThroughput
from plumber.gate.compare import CPU_KINDS, GateResult, Row, rate_text
from plumber.records import exitcodes

HEADLINES = {
    exitcodes.OK: "PASS",
    exitcodes.GATE_REGRESSION: "FAIL: throughput regression",
    exitcodes.GATE_NEW_BOTTLENECK: "FAIL: new bottleneck",
}


def gate_summary(result: GateResult) -> str:
    """The verdict, how the machine's speed was accounted for, and one row per pipeline."""
    lines = [
        f"## plumber gate: {HEADLINES[result.exit_code]}",
        "",
        f"Tolerance {result.tolerance:.0%}; rates are medians of {result.measured.repeats} "
        f"run(s), in root elements (batches) per second.",
        "",
        calibration_sentence(result),
        "",
        "| pipeline | baseline rate | calibrated expectation | measured median | change "
        "| bottleneck before | bottleneck after | verdict |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(row) for row in result.rows),
    ]
    failing = [row for row in result.rows if row.verdict not in ("pass", "not in baseline")]
    if failing:
        lines += ["", *(f"- `{row.key}`: {row.verdict}: {row.reason}." for row in failing)]
    if result.notes:
        lines += ["", *(f"Note: {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def calibration_sentence(result: GateResult) -> str:
    """Say how fast this machine was against the baseline's and what that did to expectations."""
    before = result.baseline.calibration
    now = result.measured.calibration
    ratio = result.speed_ratio
    measured = (
        f"Machine calibration: {now.speed:.1f} rounds/s now (spread {now.spread:.0%}) vs "
        f"{before.speed:.1f} when the baseline was recorded, so this machine runs at "
        f"{ratio:.2f}x the baseline's speed."
    )
    if math.isclose(ratio, 1.0, abs_tol=0.005):
        return measured + " Expectations are the baseline's rates."
    kinds = "/".join(sorted(CPU_KINDS))
    if ratio < 1:
        return (
            measured + f" Expectations are scaled down by {ratio:.2f}x so a slower runner is "
            f"not mistaken for a regression."
        )
    return (
        measured + f" Expectations of {kinds}-bound pipelines are scaled up by {ratio:.2f}x; "
        f"others keep the baseline's rate (a faster CPU does not speed up waiting)."
    )


def _row(row: Row) -> str:
    before = row.baseline.bottleneck if row.baseline else None
    after = row.measured.bottlenecks if row.measured else ()
    cells = [
        f"`{row.key}`",
        rate_text(row.baseline.rate) if row.baseline else "-",
        rate_text(row.expected_rate),
        rate_text(row.measured.rate) if row.measured else "-",
        f"{row.change:+.1%}" if math.isfinite(row.change) else "-",
        before.label() if before else "-",
        " or ".join(b.label() for b in after) if after else "-",
        f"**{row.verdict}**" if row.verdict not in ("pass", "not in baseline") else row.verdict,
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def recorded_summary(measurement: Measurement, path: str) -> str:
    """What ``--update`` wrote: one row per pipeline with its rates and bottleneck."""
    lines = [
        f"## plumber gate: baseline recorded in `{path}`",
        "",
        f"Medians of {measurement.repeats} run(s) on {measurement.machine.describe()}; "
        f"machine calibration {measurement.calibration.speed:.1f} rounds/s "
        f"(spread {measurement.calibration.spread:.0%}).",
        "",
        "| pipeline | median rate | rates of the runs | bottleneck |",
        "|---|---|---|---|",
        *(_recorded_row(p) for p in measurement.pipelines),
    ]
    return "\n".join(lines) + "\n"


def _recorded_row(p: PipelineThroughput) -> str:
    rates = ", ".join(rate_text(r) for r in p.rates)
    bottleneck = " or ".join(b.label() for b in p.bottlenecks) or "-"
    return f"| `{p.key}` | {rate_text(p.rate)} | {rates} | {bottleneck} |"
