"""The baseline file: it round-trips, and every unusable file gets a one-line reason."""

from __future__ import annotations

import json
import math

import pytest
from test_gate_compare import CONSUMER, MAP_PARALLELISM, READ_LATENCY, measurement, pipeline

from plumber.gate.baseline import (
    FORMAT,
    SCHEMA_VERSION,
    BaselineError,
    load_baseline,
    median_rate,
    most_common,
    save_baseline,
)


def saved(tmp_path, data) -> str:
    path = tmp_path / "baseline.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_baseline_round_trips_through_its_file(tmp_path) -> None:
    original = measurement(
        pipeline(24.5, MAP_PARALLELISM),
        pipeline(61.0, CONSUMER, key="pipeline-1@train.py:50"),
        speed=103.5,
    )
    path = save_baseline(original, tmp_path / "ci" / "baseline.json")
    assert load_baseline(path) == original
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["schema_version"] == SCHEMA_VERSION
    assert data["pipelines"]["pipeline-0@train.py:30"]["rate"] == 24.5
    assert data["pipelines"]["pipeline-0@train.py:30"]["bottleneck"]["kind"] == "parallelism"
    assert not list(tmp_path.glob("ci/*.tmp"))


def test_unmeasured_rate_is_saved_as_null_and_read_back_as_nan(tmp_path) -> None:
    path = save_baseline(measurement(pipeline(math.nan)), tmp_path / "b.json")
    assert json.loads(path.read_text())["pipelines"]["pipeline-0@train.py:30"]["rate"] is None
    assert math.isnan(load_baseline(path).pipelines[0].rate)


def test_the_stored_rate_is_the_expectation_even_if_edited_by_hand(tmp_path) -> None:
    path = save_baseline(measurement(pipeline(10.0)), tmp_path / "b.json")
    data = json.loads(path.read_text())
    data["pipelines"]["pipeline-0@train.py:30"]["rate"] = 30.0
    assert load_baseline(saved(tmp_path, data)).pipelines[0].rate == 30.0


def good(tmp_path) -> dict:
    path = save_baseline(measurement(pipeline(10.0)), tmp_path / "good.json")
    return json.loads(path.read_text())


def newer(data: dict) -> dict:
    return {**data, "schema_version": SCHEMA_VERSION + 1}


def without_machine(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "machine"}


def with_text_rate(data: dict) -> dict:
    data["pipelines"]["pipeline-0@train.py:30"]["rates"] = ["fast"]
    return data


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: "{not json", r"is not valid JSON \(Expecting property name"),
        (lambda d: {"schema_version": 1, "run": {}}, "is not a plumber gate baseline"),
        (lambda d: [1, 2], "is not a plumber gate baseline"),
        (lambda d: {**d, "schema_version": "1"}, "has no integer schema_version"),
        (newer, f"schema version {SCHEMA_VERSION + 1} is newer than this plumber understands"),
        (lambda d: {**d, "schema_version": 0}, "unknown baseline schema version 0"),
        (without_machine, "is malformed: machine"),
        (with_text_rate, "is malformed: expected a number, got 'fast'"),
    ],
)
def test_unusable_baseline_is_refused_with_a_one_line_reason(tmp_path, make, reason) -> None:
    path = saved(tmp_path, make(good(tmp_path)))
    with pytest.raises(BaselineError, match=reason) as error:
        load_baseline(path)
    assert "\n" not in str(error.value)
    assert path in str(error.value)


def test_missing_baseline_says_how_to_record_one(tmp_path) -> None:
    with pytest.raises(BaselineError, match="no baseline at .*nope.json .*--update"):
        load_baseline(tmp_path / "nope.json")


def test_median_rate_ignores_repeats_that_measured_nothing() -> None:
    assert median_rate([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert median_rate([4.0, 1.0]) == 2.5
    assert math.isnan(median_rate([math.nan]))


def test_most_common_bottleneck_wins_and_a_tie_keeps_all_in_first_seen_order() -> None:
    assert most_common([READ_LATENCY, MAP_PARALLELISM, MAP_PARALLELISM]) == (MAP_PARALLELISM,)
    assert most_common([READ_LATENCY, MAP_PARALLELISM]) == (READ_LATENCY, MAP_PARALLELISM)
    assert most_common([]) == ()


def test_stored_calibration_speed_is_the_one_compared_and_must_be_positive(tmp_path) -> None:
    data = good(tmp_path)
    data["calibration"]["speed"] = 50.0
    assert load_baseline(saved(tmp_path, data)).calibration.speed == 50.0
    data["calibration"]["speed"] = 0
    with pytest.raises(BaselineError, match="calibration speed must be a positive number, got 0"):
        load_baseline(saved(tmp_path, data))
