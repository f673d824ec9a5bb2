"""Whether a tuned pipeline is faster than as written, beyond the run-to-run noise.

One rule for every caller that measures before keeping a plan (``plumber
tune``, ``plumber.optimize`` on a function, a dataset or a DataLoader): the
two versions are run in interleaved rounds (A B A B ...), and the tuned one
is kept only when the median of its rates is at least :data:`MIN_GAIN`
times the as-written median *and* a one-sided Mann-Whitney rank test says
its rates are higher at level :data:`LEVEL`. The exact test needs at least
three rounds a side (three runs all faster than three: p = 1/20), so one or
two rounds can never keep a plan on their own. A result whose medians pass
the gain but whose rates still overlap is close: more rounds are run, one
at a time, up to :data:`MAX_ROUNDS`; what is still close then is not kept,
and says the difference is within the noise. A 1.07x gain measured on a
machine whose runs vary by 10% is exactly that case.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the plan module loads the record; the CLI imports this module at start
    from plumber.records.plan import PipelinePlan

#: The tuned median must beat the as-written median by this factor to be kept.
MIN_GAIN = 1.05

#: The rank test's level: the chance of keeping a plan that changes nothing.
LEVEL = 0.05

#: Interleaved rounds run before deciding, unless the caller asks for others.
DEFAULT_ROUNDS = 3

#: Rounds a close result may be extended to.
MAX_ROUNDS = 8


class Decision(enum.Enum):
    """What the rates say about the tuned pipeline."""

    FASTER = "faster"
    NOT_FASTER = "not faster"
    CLOSE = "close"


@dataclass(frozen=True)
class Comparison:
    """The rates of one pipeline, as written and tuned, one per round, and what they say.

    ``before`` and ``after`` are rates over each run's whole iteration (start-up
    included: that is what the user gets), which decide. ``steady_after`` are
    the tuned runs' rates over their steady windows, where recorded: the
    window the model predicts, so the prediction is checked against them.
    """

    before: tuple[float, ...]
    after: tuple[float, ...]
    steady_after: tuple[float, ...] = ()

    @property
    def median_before(self) -> float:
        return statistics.median(self.before) if self.before else 0.0

    @property
    def median_after(self) -> float:
        return statistics.median(self.after) if self.after else 0.0

    @property
    def median_steady_after(self) -> float | None:
        return statistics.median(self.steady_after) if self.steady_after else None

    @property
    def gain(self) -> float:
        """Ratio of the medians (tuned / as written); NaN when as written measured nothing."""
        return self.median_after / self.median_before if self.median_before > 0 else math.nan

    @property
    def p_value(self) -> float:
        """One-sided exact Mann-Whitney p-value for "tuned rates are higher"."""
        return rank_test_p(self.before, self.after)

    @property
    def decision(self) -> Decision:
        if not self.before or not self.after or not self.gain >= MIN_GAIN:
            return Decision.NOT_FASTER
        return Decision.FASTER if self.p_value <= LEVEL else Decision.CLOSE

    @property
    def faster(self) -> bool:
        return self.decision is Decision.FASTER

    def why_not(self) -> str:
        """Why the tuned pipeline is not kept (empty when it is)."""
        decision = self.decision
        if decision is Decision.FASTER:
            return ""
        if decision is Decision.CLOSE:
            return (f"the medians differ by {self.gain:.2f}x but the runs overlap "
                    f"(rank test p = {self.p_value:.2f} over {len(self.before)} rounds, "
                    f"{LEVEL:g} needed): the difference is within the noise")
        if not self.before or not self.after:
            return "the pipeline was not measured both as written and tuned"
        if not math.isfinite(self.gain):
            return "nothing was measured as written"
        return f"the medians differ by {self.gain:.2f}x, less than the {MIN_GAIN:g}x needed"

    def refusal(self, instead: str) -> str:
        """The one wording of a tuned version dropped as not faster, with its runs.

        ``instead`` says what the caller keeps (``keeping the pipeline as
        written``, ``it is returned as written``).
        """
        return (f"with the plan {_rate(self.median_after)} against {_rate(self.median_before)} "
                f"as written is not faster; {instead} ({self.why_not()}; "
                f"{spread_text(self.before, self.after)})")


def spread_text(before: Sequence[float], after: Sequence[float]) -> str:
    """The runs behind a verdict: range and median of both sides, the ratio of the medians."""
    if not before or not after:
        return "no runs recorded"
    comparison = Comparison(tuple(before), tuple(after))
    ratio = f"{comparison.gain:.2f}x" if math.isfinite(comparison.gain) else "no ratio"
    rounds = f"{len(before)} interleaved round{'s' if len(before) != 1 else ''}"
    return (f"as written {_range(before)} (median {_rate(comparison.median_before)}), "
            f"tuned {_range(after)} (median {_rate(comparison.median_after)}) over "
            f"{rounds}: {ratio}, rank test p = {comparison.p_value:.2f}")


def runs_of(pipeline: PipelinePlan) -> str:
    """``; runs: ...``, the spread of a verified pipeline's runs, to follow its outcome.

    Empty for a plan written before the runs were recorded.
    """
    before, after = pipeline.measured_rates_before, pipeline.measured_rates_after
    return f"; runs: {spread_text(before, after)}" if before and after else ""


def _range(rates: Sequence[float]) -> str:
    low, high = min(rates), max(rates)
    return _rate(low) if low == high else f"{_rate(low)}-{_rate(high)}"


def _rate(rate: float) -> str:
    from plumber.analyzers.text import rate as worded  # loads the record: not at CLI start

    return worded(rate)


def rank_test_p(before: Sequence[float], after: Sequence[float]) -> float:
    """P(U >= u) for the Mann-Whitney U of ``after`` over ``before`` if both came from one law.

    U counts the pairs (tuned run, as-written run) in which the tuned run
    was faster, a tie counting one half. Its exact distribution under the
    null hypothesis (every split of the pooled runs into two groups equally
    likely; ties ignored, which rates measured in floating point hardly
    have) comes from the classic recurrence on the group sizes.
    """
    n, m = len(after), len(before)
    if n == 0 or m == 0:
        return 1.0
    u = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in after for b in before)
    counts = _u_counts(n, m)
    total = sum(counts)
    return sum(counts[math.ceil(u):]) / total


def _u_counts(n: int, m: int) -> list[int]:
    """How many orderings of n and m distinct values give U = 0, 1, ..., n*m."""
    # table[i][j]: the counts for groups of i and j; a new largest value is either
    # from the first group (it beats all j of the other: U shifts by j) or not.
    table = [[[1] for _ in range(m + 1)] for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            counts = [0] * (i * j + 1)
            for u, c in enumerate(table[i - 1][j]):
                counts[u + j] += c
            for u, c in enumerate(table[i][j - 1]):
                counts[u] += c
            table[i][j] = counts
    return table[n][m]


#: One measured run of every pipeline of a script: its rate each, in the script's order.
Measure = Callable[[], tuple[float, ...]]


def compare_rounds(
    as_written: Measure,
    tuned: Measure,
    rounds: int,
    notify: Callable[[str], None],
    max_rounds: int = MAX_ROUNDS,
) -> tuple[Comparison, ...]:
    """Run ``rounds`` interleaved rounds, then more while a pipeline's result is close.

    Returns one :class:`Comparison` per pipeline, matched by position.
    Extra rounds stop at ``max(rounds, max_rounds)``.
    """
    before: list[tuple[float, ...]] = []
    after: list[tuple[float, ...]] = []
    cap = max(rounds, max_rounds)
    while True:
        index = len(before) + 1
        planned = rounds if index <= rounds else cap
        notify(f"verifying: round {index} of {planned}, as written")
        before.append(as_written())
        notify(f"verifying: round {index} of {planned}, with the plan")
        after.append(tuned())
        comparisons = by_pipeline(before, after)
        if len(before) >= cap or (len(before) >= rounds and not any(
                c.decision is Decision.CLOSE for c in comparisons)):
            return comparisons
        if len(before) >= rounds:
            notify("verifying: the result is within the noise so far; one more round")


def by_pipeline(
    before: Sequence[tuple[float, ...]], after: Sequence[tuple[float, ...]]
) -> tuple[Comparison, ...]:
    """Per-round rate tuples regrouped per pipeline (a pipeline missing in a run is skipped)."""
    count = max((len(r) for r in (*before, *after)), default=0)
    return tuple(
        Comparison(tuple(r[i] for r in before if i < len(r)),
                   tuple(r[i] for r in after if i < len(r)))
        for i in range(count)
    )
