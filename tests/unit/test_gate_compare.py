"""The gate's verdicts on synthetic baselines and measurements (no runs, no files).

Rates are in root elements/s; a calibration speed of 100 is "the baseline's
machine", 50 a machine half as fast.
"""

from __future__ import annotations

import math

import pytest

from plumber.gate.baseline import Bottleneck, Measurement, PipelineThroughput
from plumber.gate.compare import MISSING, NEW_BOTTLENECK, NOT_GATED, PASS, REGRESSION, compare
from plumber.gate.machine import Calibration, MachineInfo
from plumber.records import exitcodes

MAP_PARALLELISM = Bottleneck("map-0", "parallelism", True, "train.py:12")
MAP_CPU = Bottleneck("map-0", "cpu", True, "train.py:12")
READ_LATENCY = Bottleneck("map-1", "latency", True, "train.py:9")
CONSUMER = Bottleneck(None, "consumer", False)


def pipeline(
    rate: float,
    *bottlenecks: Bottleneck,
    key: str = "pipeline-0@train.py:30",
) -> PipelineThroughput:
    pipeline_id, _, root = key.partition("@")
    return PipelineThroughput(key, pipeline_id, root, rate, (rate,), bottlenecks or
                              (MAP_PARALLELISM,))


def measurement(
    *pipelines: PipelineThroughput,
    speed: float = 100.0,
    cores: float = 2.0,
    command: tuple[str, ...] = ("train.py", "--epochs", "1"),
) -> Measurement:
    return Measurement(
        pipelines=pipelines,
        calibration=Calibration.from_samples([speed]),
        machine=MachineInfo("Test CPU", int(cores), cores, "Linux x86_64", "3.11.7"),
        command=command,
        repeats=len(pipelines[0].rates) if pipelines else 1,
        created_at="2025-01-01T00:00:00+00:00",
        plumber_version="0.1.0",
    )


def judge(baseline: Measurement, measured: Measurement, tolerance: float = 0.10):
    result = compare(baseline, measured, tolerance)
    return result, result.rows[0]


def test_rate_within_tolerance_passes() -> None:
    result, row = judge(measurement(pipeline(100.0)), measurement(pipeline(91.0)))
    assert row.verdict == PASS
    assert row.change == pytest.approx(-0.09)
    assert result.exit_code == exitcodes.OK and result.passed


def test_rate_below_tolerance_is_a_regression() -> None:
    result, row = judge(measurement(pipeline(100.0)), measurement(pipeline(89.0)))
    assert row.verdict == REGRESSION
    assert "11% below the calibrated expectation (tolerance 10%)" in row.reason
    assert result.exit_code == exitcodes.GATE_REGRESSION


def test_slower_machine_lowers_the_expectation_so_the_same_code_passes() -> None:
    # GIVEN a CPU-bound baseline of 100/s WHEN the runner is half as fast and delivers 50/s
    result, row = judge(measurement(pipeline(100.0)), measurement(pipeline(50.0), speed=50.0))
    assert result.speed_ratio == pytest.approx(0.5)
    assert row.expected_rate == pytest.approx(50.0)
    assert row.verdict == PASS


def test_a_real_regression_still_fails_on_a_slower_machine() -> None:
    _, row = judge(measurement(pipeline(100.0)), measurement(pipeline(30.0), speed=50.0))
    assert row.expected_rate == pytest.approx(50.0)
    assert row.verdict == REGRESSION


def test_faster_machine_raises_the_expectation_of_a_cpu_bound_pipeline() -> None:
    _, row = judge(measurement(pipeline(100.0)), measurement(pipeline(100.0), speed=150.0))
    assert row.scale == pytest.approx(1.5)
    assert row.verdict == REGRESSION


@pytest.mark.parametrize("bottleneck", [READ_LATENCY, CONSUMER])
def test_faster_machine_does_not_raise_the_expectation_of_a_waiting_pipeline(bottleneck) -> None:
    baseline = measurement(pipeline(100.0, bottleneck))
    _, row = judge(baseline, measurement(pipeline(100.0, bottleneck), speed=150.0))
    assert row.scale == 1.0
    assert row.verdict == PASS


def test_slower_machine_lowers_the_expectation_of_a_waiting_pipeline_too() -> None:
    baseline = measurement(pipeline(100.0, CONSUMER))
    _, row = judge(baseline, measurement(pipeline(60.0, CONSUMER), speed=60.0))
    assert row.scale == pytest.approx(0.6)
    assert row.verdict == PASS


def test_bottleneck_moving_to_another_stage_is_a_new_bottleneck() -> None:
    result, row = judge(measurement(pipeline(100.0)), measurement(pipeline(100.0, READ_LATENCY)))
    assert row.verdict == NEW_BOTTLENECK
    assert "moved from map-0 parallelism at train.py:12 to map-1 latency at train.py:9" in (
        row.reason
    )
    assert result.exit_code == exitcodes.GATE_NEW_BOTTLENECK


def test_same_stage_with_another_kind_is_a_new_bottleneck() -> None:
    _, row = judge(measurement(pipeline(100.0)), measurement(pipeline(100.0, MAP_CPU)))
    assert row.verdict == NEW_BOTTLENECK


def test_parallelism_turning_cpu_on_a_machine_with_other_core_count_is_expected() -> None:
    baseline = measurement(pipeline(100.0), cores=2.0)
    _, row = judge(baseline, measurement(pipeline(100.0, MAP_CPU), cores=1.0))
    assert row.verdict == PASS


def test_parallelism_turning_cpu_on_a_machine_running_at_another_speed_is_expected() -> None:
    baseline = measurement(pipeline(100.0))
    _, row = judge(baseline, measurement(pipeline(60.0, MAP_CPU), speed=50.0))
    assert row.verdict == PASS
    _, row = judge(baseline, measurement(pipeline(100.0, MAP_CPU), speed=95.0))
    assert row.verdict == NEW_BOTTLENECK


def test_tied_repeats_give_the_baseline_bottleneck_the_benefit_of_the_doubt() -> None:
    tied = pipeline(100.0, READ_LATENCY, MAP_PARALLELISM)
    _, row = judge(measurement(pipeline(100.0)), measurement(tied))
    assert row.verdict == PASS


def test_pipeline_no_longer_input_bound_is_not_a_new_bottleneck() -> None:
    _, row = judge(measurement(pipeline(100.0)), measurement(pipeline(120.0, CONSUMER)))
    assert row.verdict == PASS


def test_consumer_bound_baseline_becoming_input_bound_is_a_new_bottleneck() -> None:
    baseline = measurement(pipeline(100.0, CONSUMER))
    _, row = judge(baseline, measurement(pipeline(100.0, MAP_PARALLELISM)))
    assert row.verdict == NEW_BOTTLENECK
    assert "from consumer (not the input) to map-0 parallelism" in row.reason


def test_regression_and_new_bottleneck_together_exit_as_a_regression() -> None:
    result, row = judge(measurement(pipeline(100.0)), measurement(pipeline(50.0, READ_LATENCY)))
    assert row.verdict == REGRESSION
    assert "below the calibrated expectation" in row.reason and "moved from" in row.reason
    assert result.exit_code == exitcodes.GATE_REGRESSION


def test_pipeline_that_delivered_nothing_is_a_regression() -> None:
    _, row = judge(measurement(pipeline(100.0)), measurement(pipeline(math.nan)))
    assert row.verdict == REGRESSION
    assert "no rate was measured" in row.reason


def test_baseline_without_a_rate_gates_only_the_bottleneck() -> None:
    _, row = judge(measurement(pipeline(math.nan)), measurement(pipeline(5.0)))
    assert row.verdict == PASS
    assert row.reason == "the baseline has no rate, so only its bottleneck is gated"
    _, row = judge(measurement(pipeline(math.nan)), measurement(pipeline(5.0, READ_LATENCY)))
    assert row.verdict == NEW_BOTTLENECK


def test_baseline_pipeline_missing_from_the_run_fails_as_a_regression() -> None:
    other = pipeline(100.0, key="pipeline-0@other.py:3")
    result = compare(measurement(pipeline(100.0)), measurement(other), 0.1)
    verdicts = {row.key: row.verdict for row in result.rows}
    assert verdicts == {"pipeline-0@train.py:30": MISSING, "pipeline-0@other.py:3": NOT_GATED}
    assert result.exit_code == exitcodes.GATE_REGRESSION


def test_pipeline_not_in_the_baseline_is_reported_but_not_gated() -> None:
    extra = pipeline(1.0, READ_LATENCY, key="pipeline-1@train.py:50")
    result = compare(measurement(pipeline(100.0)), measurement(pipeline(100.0), extra), 0.1)
    assert [row.verdict for row in result.rows] == [PASS, NOT_GATED]
    assert result.passed


def test_root_moved_to_another_line_of_the_same_file_is_still_matched() -> None:
    moved = pipeline(100.0, key="pipeline-0@train.py:33")
    _, row = judge(measurement(pipeline(100.0)), measurement(moved))
    assert row.verdict == PASS
    assert row.measured is moved
    assert "root moved from train.py:30 to train.py:33" in row.reason


def test_different_command_and_machine_are_noted() -> None:
    baseline = measurement(pipeline(100.0))
    measured = measurement(pipeline(100.0), cores=4.0, command=("train.py", "--epochs", "2"))
    result = compare(baseline, measured, 0.1)
    assert any("`train.py --epochs 1`" in n and "`train.py --epochs 2`" in n
               for n in result.notes)
    assert any("4 cores" in n for n in result.notes)


def test_same_conditions_have_no_notes() -> None:
    assert compare(measurement(pipeline(1.0)), measurement(pipeline(1.0)), 0.1).notes == ()


@pytest.mark.parametrize("tolerance", [-0.1, 1.0])
def test_tolerance_outside_0_to_1_is_refused(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        compare(measurement(pipeline(1.0)), measurement(pipeline(1.0)), tolerance)
