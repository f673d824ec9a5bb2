"""What the gate writes for CI: the Markdown summary and the JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from test_gate_compare import CONSUMER, READ_LATENCY, measurement, pipeline

from plumber.gate.compare import compare
from plumber.gate.junit import error_junit, gate_junit
from plumber.gate.markdown import gate_summary, recorded_summary


def table_rows(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_passing_summary_has_the_verdict_and_every_figure_of_the_table() -> None:
    result = compare(measurement(pipeline(24.0)), measurement(pipeline(23.0), speed=100.0), 0.1)
    text = gate_summary(result)
    assert text.startswith("## plumber gate: PASS\n")
    assert table_rows(text) == [[
        "`pipeline-0@train.py:30`", "24/s", "24/s", "23/s", "-4.2%",
        "map-0 parallelism at train.py:12", "map-0 parallelism at train.py:12", "pass",
    ]]
    assert "Tolerance 10%" in text
    assert "Expectations are the baseline's rates." in text


def test_slower_machine_is_explained_in_the_summary() -> None:
    result = compare(measurement(pipeline(24.0)), measurement(pipeline(12.0), speed=50.0), 0.1)
    text = gate_summary(result)
    assert "0.50x the baseline's speed" in text
    assert "so a slower runner is not mistaken for a regression" in text
    assert table_rows(text)[0][2] == "12/s"


def test_faster_machine_says_which_pipelines_are_scaled_up() -> None:
    result = compare(measurement(pipeline(24.0)), measurement(pipeline(36.0), speed=150.0), 0.1)
    assert "cpu/parallelism-bound pipelines are scaled up by 1.50x" in gate_summary(result)


def test_failing_summary_names_the_failure_and_lists_its_reason() -> None:
    baseline = measurement(pipeline(30.0), pipeline(60.0, CONSUMER, key="pipeline-1@t.py:9"))
    measured = measurement(pipeline(10.0), pipeline(60.0, CONSUMER, key="pipeline-1@t.py:9"))
    text = gate_summary(compare(baseline, measured, 0.1))
    assert text.startswith("## plumber gate: FAIL: throughput regression\n")
    first, second = table_rows(text)
    assert first[4] == "-66.7%" and first[7] == "**regression**"
    assert second[7] == "pass"
    assert "- `pipeline-0@train.py:30`: regression: 67% below the calibrated expectation" in text


def test_new_bottleneck_summary_shows_before_and_after() -> None:
    result = compare(measurement(pipeline(30.0)), measurement(pipeline(30.0, READ_LATENCY)), 0.1)
    text = gate_summary(result)
    assert text.startswith("## plumber gate: FAIL: new bottleneck\n")
    row = table_rows(text)[0]
    assert row[5:] == [
        "map-0 parallelism at train.py:12", "map-1 latency at train.py:9", "**new bottleneck**"
    ]


def test_notes_are_printed_under_the_table() -> None:
    baseline = measurement(pipeline(1.0), command=("train.py", "--fast"))
    text = gate_summary(compare(baseline, measurement(pipeline(1.0)), 0.1))
    assert "Note: The baseline was recorded with `train.py --fast`" in text


def test_recorded_summary_lists_rates_of_every_run() -> None:
    text = recorded_summary(measurement(pipeline(24.0)), ".ci/b.json")
    assert text.startswith("## plumber gate: baseline recorded in `.ci/b.json`")
    assert table_rows(text) == [
        ["`pipeline-0@train.py:30`", "24/s", "24/s", "map-0 parallelism at train.py:12"]
    ]


def test_junit_has_one_testcase_per_pipeline_and_a_failure_for_a_regression() -> None:
    baseline = measurement(pipeline(30.0), pipeline(60.0, CONSUMER, key="pipeline-1@t.py:9"))
    measured = measurement(pipeline(10.0), pipeline(60.0, CONSUMER, key="pipeline-1@t.py:9"),
                           pipeline(5.0, key="pipeline-2@t.py:20"))
    root = ET.fromstring(gate_junit(compare(baseline, measured, 0.1)))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["pipeline-0@train.py:30", "pipeline-1@t.py:9", "pipeline-2@t.py:20"]
    failure = cases["pipeline-0@train.py:30"].find("failure")
    assert failure.get("type") == "regression"
    assert "expected 30/s (baseline 30/s x 1 for machine speed)" in failure.text
    assert cases["pipeline-1@t.py:9"].find("failure") is None
    assert cases["pipeline-2@t.py:20"].find("failure") is None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"tolerance": "0.1", "speed_ratio": "1", "repeats": "1"}


def test_junit_error_document_says_why_nothing_was_compared() -> None:
    root = ET.fromstring(error_junit("baseline", "no baseline at b.json"))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")
    error = suite.find("testcase").find("error")
    assert (error.get("type"), error.get("message")) == ("baseline", "no baseline at b.json")
