"""Judge a measurement against its baseline: pure, so every rule is unit-tested.

Rules, per pipeline of the baseline:

- Its expected rate is the baseline's rate scaled by how fast this machine
  was, relative to the baseline's (the calibration ratio). Pipelines bound
  by computation (``cpu``, ``parallelism``) scale both ways. Others (a
  latency-, disk- or consumer-bound pipeline) are only ever scaled down: a
  faster CPU does not shorten a sleep, a disk read or a GPU step, while a
  busier or slower machine can slow anything, so the gate errs towards not
  blaming the code for the machine.
- A median rate below the expectation by more than the tolerance is a
  regression; so is a pipeline of the baseline that the run no longer shows.
- An input-bound pipeline whose bottleneck (stage or kind) differs from the
  baseline's is a new bottleneck. When repeats disagree and tie, the
  baseline's bottleneck among the tied ones counts as unchanged. On a
  machine with a different number of usable cores, or one whose calibrated
  speed differs from the baseline's by more than the tolerance (a busier or
  another machine), the same stage turning from ``parallelism`` to ``cpu``
  (or back) is expected, not new: whether cores sit idle at a given
  parallelism depends on how many there are and how much of them is free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plumber.gate.baseline import Measurement, PipelineThroughput
from plumber.records import exitcodes
from plumber.records.units import rate

#: Bottleneck kinds whose rate follows the machine's compute speed.
CPU_KINDS = frozenset({"cpu", "parallelism"})

PASS = "pass"
REGRESSION = "regression"
NEW_BOTTLENECK = "new bottleneck"
MISSING = "missing"
NOT_GATED = "not in baseline"

#: Verdicts that fail the gate, and the exit code each leads to (first match wins).
FAILING = ((REGRESSION, exitcodes.GATE_REGRESSION), (MISSING, exitcodes.GATE_REGRESSION),
           (NEW_BOTTLENECK, exitcodes.GATE_NEW_BOTTLENECK))


@dataclass(frozen=True)
class Row:
    """The verdict on one pipeline.

    ``expected_rate`` is the baseline's rate times ``scale`` (NaN without a
    baseline entry); ``reason`` says in one sentence why the verdict.
    """

    key: str
    baseline: PipelineThroughput | None
    measured: PipelineThroughput | None
    scale: float
    expected_rate: float
    verdict: str
    reason: str

    @property
    def change(self) -> float:
        """Measured median relative to the expectation (-0.2 is 20% slower); NaN if unknown."""
        if self.measured is None or not self.expected_rate > 0:
            return math.nan
        return self.measured.rate / self.expected_rate - 1.0


@dataclass(frozen=True)
class GateResult:
    """Every pipeline's verdict, and what they were judged against."""

    rows: tuple[Row, ...]
    tolerance: float
    speed_ratio: float
    baseline: Measurement
    measured: Measurement
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        verdicts = {row.verdict for row in self.rows}
        for verdict, code in FAILING:
            if verdict in verdicts:
                return code
        return exitcodes.OK

    @property
    def passed(self) -> bool:
        return self.exit_code == exitcodes.OK


def rate_text(value: float) -> str:
    """A rate as the gate's reports show it: the one rate wording, ``-`` when there is none."""
    return rate(value) if math.isfinite(value) else "-"


def scale_for(baseline: PipelineThroughput, speed_ratio: float) -> float:
    """How much to scale the baseline's rate on a machine ``speed_ratio`` times as fast."""
    bottleneck = baseline.bottleneck
    cpu_bound = bottleneck is not None and bottleneck.input_bound and bottleneck.kind in CPU_KINDS
    return speed_ratio if cpu_bound else min(speed_ratio, 1.0)


def check_tolerance(tolerance: object) -> float:
    """``tolerance`` if it is a fraction from 0 to under 1; a ValueError saying so if not.

    Checked before anything is read or run: ``tolerance=10`` meant as 10%
    must not cost a whole measurement before it is refused.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not (
        0 <= tolerance < 1
    ):
        raise ValueError(f"tolerance is a fraction (0.1 allows 10% below the expectation), "
                         f"got {tolerance!r}")
    return float(tolerance)


def compare(baseline: Measurement, measured: Measurement, tolerance: float) -> GateResult:
    """Judge every pipeline of ``measured`` against ``baseline`` (tolerance: 0.1 is 10%)."""
    check_tolerance(tolerance)
    ratio = measured.calibration.speed / baseline.calibration.speed
    same_capacity = baseline.machine.cores_usable == measured.machine.cores_usable and (
        abs(ratio - 1.0) <= tolerance
    )
    unmatched = {p.key: p for p in measured.pipelines}
    rows = []
    for expected in baseline.pipelines:
        found = _match(expected, unmatched)
        if found is not None:
            del unmatched[found.key]
        rows.append(_judge(expected, found, scale_for(expected, ratio), tolerance, same_capacity))
    for extra in unmatched.values():
        rows.append(Row(extra.key, None, extra, 1.0, math.nan, NOT_GATED,
                        "not in the baseline, so not gated (record it with --update)"))
    return GateResult(tuple(rows), tolerance, ratio, baseline, measured,
                      _notes(baseline, measured))


def _match(
    expected: PipelineThroughput, candidates: dict[str, PipelineThroughput]
) -> PipelineThroughput | None:
    """The same key, else the same pipeline id with its root in the same file (lines moved)."""
    if expected.key in candidates:
        return candidates[expected.key]
    file = expected.root.rpartition(":")[0]
    for candidate in candidates.values():
        if candidate.pipeline_id == expected.pipeline_id and (
            candidate.root.rpartition(":")[0] == file
        ):
            return candidate
    return None


def _judge(
    expected: PipelineThroughput,
    measured: PipelineThroughput | None,
    scale: float,
    tolerance: float,
    same_capacity: bool,
) -> Row:
    expected_rate = expected.rate * scale
    if measured is None:
        return Row(expected.key, expected, None, scale, expected_rate, MISSING,
                   "not seen in this run (if it was removed on purpose, re-record with --update)")
    problems = []
    verdict = PASS
    if not math.isfinite(measured.rate):
        verdict = REGRESSION
        problems.append("no rate was measured (it delivered no elements)")
    elif not expected_rate > 0:
        problems.append("the baseline has no rate, so only its bottleneck is gated")
    elif measured.rate < expected_rate * (1.0 - tolerance):
        verdict = REGRESSION
        problems.append(
            f"{1.0 - measured.rate / expected_rate:.0%} below the calibrated expectation "
            f"(tolerance {tolerance:.0%})"
        )
    moved = _new_bottleneck(expected, measured, same_capacity)
    if moved:
        verdict = NEW_BOTTLENECK if verdict == PASS else verdict
        problems.append(moved)
    if measured.root != expected.root:
        problems.append(f"its root moved from {expected.root} to {measured.root}")
    reason = "; ".join(problems) if problems else f"within {tolerance:.0%} of the expectation"
    return Row(expected.key, expected, measured, scale, expected_rate, verdict, reason)


def _new_bottleneck(
    expected: PipelineThroughput, measured: PipelineThroughput, same_capacity: bool
) -> str | None:
    """Why the bottleneck counts as new, or None when it does not."""
    before = expected.bottleneck
    if before is None or not measured.bottlenecks:
        return None
    if not all(b.input_bound for b in measured.bottlenecks):
        return None
    identities = {b.identity for b in measured.bottlenecks}
    if not same_capacity and before.kind in CPU_KINDS:
        identities |= {(stage, kind) for stage, after in identities if after in CPU_KINDS
                       for kind in CPU_KINDS}
    if before.identity in identities:
        return None
    after = measured.bottlenecks[0]
    return f"the bottleneck moved from {before.label()} to {after.label()}"


def _notes(baseline: Measurement, measured: Measurement) -> tuple[str, ...]:
    """Differences in how the two were measured that a reader should know about."""
    notes = []
    if baseline.command != measured.command:
        notes.append(
            f"The baseline was recorded with `{' '.join(baseline.command)}`, "
            f"this run is `{' '.join(measured.command)}`."
        )
    if baseline.machine.describe() != measured.machine.describe():
        notes.append(
            f"The baseline was recorded on {baseline.machine.describe()}; "
            f"this run is on {measured.machine.describe()}."
        )
    return tuple(notes)

