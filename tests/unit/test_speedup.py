"""Keeping a plan only when it beats the run-to-run noise (plumber.analyzers.speedup)."""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import pytest

from plumber.analyzers.speedup import (
    LEVEL,
    MAX_ROUNDS,
    Comparison,
    Decision,
    compare_rounds,
    rank_test_p,
    runs_of,
    spread_text,
)
from plumber.records.plan import PipelinePlan, Plan, StageRef
from plumber.tuner.verify import keep_faster


def brute_force_p(before: list[float], after: list[float]) -> float:
    """The rank test's p by listing every split of the pooled runs (no ties)."""
    pooled = before + after
    def u(group: tuple[int, ...]) -> int:
        rest = [pooled[i] for i in range(len(pooled)) if i not in group]
        return sum(pooled[i] > b for i in group for b in rest)
    observed = u(tuple(range(len(before), len(pooled))))
    splits = list(combinations(range(len(pooled)), len(after)))
    return sum(u(s) >= observed for s in splits) / len(splits)


@pytest.mark.parametrize(("before", "after"), [
    ([10.0, 11.0, 12.0], [13.0, 14.0, 15.0]),
    ([10.0, 14.0, 12.0], [13.0, 11.0, 15.0]),
    ([10.0, 11.0], [9.0, 12.0, 13.0, 8.5]),
    ([5.0, 7.0, 6.0, 9.0], [8.0, 6.5, 10.0, 11.0]),
])
def test_rank_test_matches_counting_every_split(before, after):
    assert rank_test_p(before, after) == pytest.approx(brute_force_p(before, after))


def test_three_runs_all_faster_than_three_is_the_smallest_p_that_keeps_a_plan():
    assert rank_test_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(1 / 20)
    assert rank_test_p([1.0, 2.0], [4.0, 5.0]) == pytest.approx(1 / 6)


def test_a_clearly_faster_plan_is_kept():
    check = Comparison(before=(100.0, 98.0, 103.0), after=(190.0, 205.0, 199.0))
    assert check.decision is Decision.FASTER
    assert check.faster
    assert check.why_not() == ""


def test_overlapping_runs_with_a_small_median_gain_are_not_faster():
    check = Comparison(before=(100.0, 90.0, 110.0), after=(102.0, 95.0, 108.0))
    assert check.decision is Decision.NOT_FASTER
    assert "less than the 1.05x needed" in check.why_not()


def test_a_gain_on_the_medians_with_overlapping_runs_is_close():
    # 1.07x on the medians, but the runs overlap: the noise could explain it.
    check = Comparison(before=(100.0, 92.0, 112.0), after=(107.0, 96.0, 115.0))
    assert check.gain == pytest.approx(1.07)
    assert check.p_value > LEVEL
    assert check.decision is Decision.CLOSE
    assert not check.faster
    assert "within the noise" in check.why_not()


def test_a_slower_plan_is_not_faster():
    assert Comparison(before=(100.0, 101.0, 99.0), after=(50.0, 51.0, 49.0)).decision \
        is Decision.NOT_FASTER


def test_one_or_two_rounds_can_never_keep_a_plan():
    assert Comparison(before=(100.0,), after=(500.0,)).decision is Decision.CLOSE
    assert Comparison(before=(100.0, 101.0), after=(500.0, 510.0)).decision is Decision.CLOSE


def test_nothing_measured_as_written_is_not_faster():
    check = Comparison(before=(0.0, 0.0, 0.0), after=(5.0, 6.0, 7.0))
    assert math.isnan(check.gain)
    assert check.decision is Decision.NOT_FASTER
    assert check.why_not() == "nothing was measured as written"
    unseen = Comparison(before=(5.0, 6.0, 7.0), after=())
    assert unseen.decision is Decision.NOT_FASTER
    assert "not measured both" in unseen.why_not()


class Runs:
    """Measured rates handed out one run at a time, for compare_rounds."""

    def __init__(self, rates: list[float]) -> None:
        self.rates = list(rates)
        self.taken = 0

    def __call__(self) -> tuple[float, ...]:
        self.taken += 1
        return (self.rates.pop(0),)


def test_a_close_result_asks_for_more_rounds_until_it_is_decided():
    # GIVEN two rounds whose runs overlap, then clearly separated runs
    before = Runs([100.0, 104.0, 101.0, 99.0, 100.0, 102.0, 100.0, 101.0])
    after = Runs([103.0, 112.0, 115.0, 118.0, 116.0, 117.0, 119.0, 120.0])
    messages: list[str] = []
    # WHEN compared from two rounds
    (check,) = compare_rounds(before, after, 2, messages.append)
    # THEN rounds were added while it was close, and it stopped once decided
    assert 2 < before.taken == after.taken < MAX_ROUNDS
    assert check.faster
    assert any("one more round" in m for m in messages)


def test_a_result_still_close_at_the_cap_is_not_kept():
    before = Runs([100.0, 92.0, 112.0] * 4)
    after = Runs([107.0, 96.0, 115.0] * 4)
    (check,) = compare_rounds(before, after, 3, lambda message: None, max_rounds=6)
    assert before.taken == after.taken == 6
    assert check.decision is Decision.CLOSE and not check.faster


def test_a_clear_result_runs_only_the_rounds_asked_for():
    before, after = Runs([100.0, 101.0, 99.0]), Runs([50.0, 51.0, 49.0])
    compare_rounds(before, after, 3, lambda message: None)
    assert before.taken == after.taken == 3


def test_spread_text_shows_both_ranges_the_medians_their_ratio_and_the_test():
    text = spread_text((92.0, 100.0, 112.0), (96.0, 107.0, 115.0))
    assert "as written 92/s-112/s (median 100/s)" in text
    assert "tuned 96/s-115/s (median 107/s)" in text
    assert "3 interleaved rounds: 1.07x" in text
    assert "rank test p = " in text


def test_a_verified_pipeline_carries_its_runs_into_the_outcome_text():
    root = StageRef("train.py", 3, "prefetch")
    recorded = PipelinePlan(root=root, settings=(), measured_rates_before=(10.0, 11.0, 12.0),
                            measured_rates_after=(20.0, 21.0, 22.0))
    assert runs_of(recorded).startswith("; runs: as written 10/s-12/s")
    assert runs_of(PipelinePlan(root=root, settings=())) == ""


def test_keep_faster_records_the_runs_and_rejects_what_was_not_measured_faster():
    def pipeline(line: int) -> PipelinePlan:
        return PipelinePlan(root=StageRef("train.py", line, "map"), settings=())

    plan = Plan(script="train.py", pipelines=(pipeline(3), pipeline(9)))
    checked = keep_faster(plan, (Comparison((10.0, 11.0, 10.5), (20.0, 21.0, 22.0)),))
    assert [p.root.line for p in checked.pipelines] == [3]
    assert checked.pipelines[0].measured_rates_after == (20.0, 21.0, 22.0)
    assert [p.root.line for p in checked.rejected] == [9]
    assert checked.notes == (
        "pipeline 1: with the plan 0/s against 0/s as written is not faster; keeping the "
        "pipeline as written (the pipeline was not measured both as written and tuned; "
        "no runs recorded)",)


def test_the_tuned_runs_steady_rates_are_kept_beside_the_rates_that_decide(monkeypatch):
    import dataclasses

    from plumber.capture.session import SessionOptions
    from plumber.tuner import verify as verifying
    from tests.report_samples import sample_profile

    def run_with(steady_steps: int | None) -> object:
        profile = sample_profile()
        (pipeline,) = profile.pipelines
        consumer = dataclasses.replace(pipeline.consumer, steady_steps=steady_steps,
                                       steady_s=2.0 if steady_steps else None)
        return dataclasses.replace(profile, pipelines=(
            dataclasses.replace(pipeline, consumer=consumer),))

    runs = iter([run_with(None), run_with(100), run_with(None), run_with(None),
                 run_with(None), run_with(130)])
    monkeypatch.setattr(verifying, "fresh_profile",
                        lambda script, args, options, plan=None: next(runs))
    plan = Plan(script="train.py", pipelines=(
        PipelinePlan(root=StageRef("train.py", 3, "prefetch"), settings=(), predicted_rate=60.0),))
    (check,) = verifying.verify(Path("train.py"), [], plan, 3, SessionOptions(), lambda m: None)
    assert check.steady_after == (50.0, 65.0)
    (kept,) = keep_faster(plan, (check,)).rejected
    assert kept.measured_steady_rate_after == 57.5
    assert kept.measured_rate_after == check.median_after


def test_the_prediction_is_checked_against_the_steady_rate_where_recorded():
    from plumber.analyzers.edits import outcome

    pipeline = PipelinePlan(root=StageRef("train.py", 3, "prefetch"), settings=(),
                            predicted_rate=60.0, measured_rate_before=30.0,
                            measured_rate_after=48.0, measured_steady_rate_after=57.0)
    assert outcome(pipeline, kept=True) == (
        "measured 30/s as written -> 48/s tuned (1.60x); the model predicted 60/s "
        "after start-up, where the tuned runs measured 57/s (prediction error 5%)")
