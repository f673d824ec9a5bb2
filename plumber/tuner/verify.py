"""Verify a plan by measurement: as-written and tuned runs, interleaved.

Each round runs the script as written, then with the plan applied (A B A B),
with the same bounds and no CPU probe, and takes each pipeline's rate (root
elements per second over the time the consumer iterated). Pipelines are
matched by the order in which the script first iterated them. Medians over
rounds decide: a plan that is not faster is not recommended.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plumber.record import Profile
from plumber.session import SessionOptions, profile_script
from plumber.tuner.plan import Plan

#: The tuned pipeline must beat the as-written one by this factor to be kept.
MIN_GAIN = 1.05


@dataclass(frozen=True)
class Verification:
    """Measured rates per pipeline (one list of rounds per pipeline) and the verdict."""

    before: tuple[tuple[float, ...], ...]
    after: tuple[tuple[float, ...], ...]

    def median_before(self, index: int) -> float:
        return _median(self.before, index)

    def median_after(self, index: int) -> float:
        return _median(self.after, index)

    def faster(self, index: int) -> bool:
        before, after = self.median_before(index), self.median_after(index)
        return before > 0 and after >= MIN_GAIN * before


def pipeline_rates(profile: Profile) -> tuple[float, ...]:
    """Root elements per second of each pipeline, as the consumer received them."""
    rates = []
    for pipeline in profile.pipelines:
        consumer = pipeline.consumer
        if consumer is None or pipeline.duration_s <= 0:
            rates.append(0.0)
        else:
            rates.append(consumer.steps / pipeline.duration_s)
    return tuple(rates)


def verify(
    script: Path,
    args: Sequence[str],
    plan: Plan,
    rounds: int,
    options: SessionOptions,
    notify: Callable[[str], None],
) -> Verification:
    """Run ``rounds`` interleaved as-written / tuned measurements."""
    from plumber.tuner.appliers import applying

    measuring = dataclasses.replace(options, cpu_probe_s=0.0, notify=lambda message: None)
    tuned = dataclasses.replace(measuring, around_script=lambda: applying(plan, script))
    before: list[tuple[float, ...]] = []
    after: list[tuple[float, ...]] = []
    for i in range(rounds):
        notify(f"verifying: round {i + 1} of {rounds}, as written")
        before.append(pipeline_rates(profile_script(script, args, measuring).profile))
        notify(f"verifying: round {i + 1} of {rounds}, with the plan")
        after.append(pipeline_rates(profile_script(script, args, tuned).profile))
    return Verification(_by_pipeline(before), _by_pipeline(after))


def _by_pipeline(runs: list[tuple[float, ...]]) -> tuple[tuple[float, ...], ...]:
    count = max((len(r) for r in runs), default=0)
    return tuple(tuple(r[i] for r in runs if i < len(r)) for i in range(count))


def _median(rates: tuple[tuple[float, ...], ...], index: int) -> float:
    if index >= len(rates) or not rates[index]:
        return 0.0
    return statistics.median(rates[index])
