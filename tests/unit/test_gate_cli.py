"""``plumber gate`` end to end on saved synthetic profiles, with a fixed machine speed.

The calibration is replaced by a constant so the verdicts depend only on
the profiles and the baseline; running real scripts is left to the
integration tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_gate_measure import consumer_bound, map_bound, profile

from plumber.cli import main
from plumber.commands.gate import tolerance
from plumber.gate import BaselineError, RunOptions, assert_throughput
from plumber.gate.machine import Calibration, CalibrationUnavailable, sample_speeds
from plumber.gate.runner import profile_command
from plumber.records import exitcodes

SPEED = 100.0


@pytest.fixture(autouse=True)
def fixed_machine_speed(monkeypatch):
    monkeypatch.setattr("plumber.gate.runner.sample_speeds", lambda n=3: [SPEED] * n)


@pytest.fixture
def saved_profile(tmp_path) -> Path:
    return profile(map_bound(10.0)).save(tmp_path / "run" / "profile.json")


@pytest.fixture
def baseline(capsys, tmp_path, saved_profile) -> Path:
    path = tmp_path / "baseline.json"
    assert main(["gate", "--baseline", str(path), "--update", str(saved_profile)]) == 0
    capsys.readouterr()
    return path


def edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data["pipelines"]["pipeline-0@train.py:30"])
    path.write_text(json.dumps(data))
    return path


def gate(capsys, *args) -> tuple[int, str, str]:
    code = main(["gate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("25%", 0.25), (" 0% ", 0.0)])
def test_tolerance_is_a_percentage(text: str, value: float) -> None:
    assert tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["100%", "-5%", "ten", "0.1.2"])
def test_tolerance_outside_0_to_100_percent_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        tolerance(text)


def test_each_repeat_is_a_plumber_profile_process_with_the_bounds_passed_on() -> None:
    options = RunOptions(steps=200, duration_s=30.0, cpu_probe_s=1.5)
    command = profile_command(Path("train.py"), ["--epochs", "1"], Path("out/run-1"), options)
    assert command == [sys.executable, "-m", "plumber", "profile", "-o", "out/run-1",
                       "--cpu-probe", "1.5", "--steps", "200", "--duration", "30",
                       "train.py", "--", "--epochs", "1"]


def test_update_records_the_profile_as_the_baseline(capsys, tmp_path, saved_profile) -> None:
    path = tmp_path / "new" / "baseline.json"
    code, out, _ = gate(capsys, "--baseline", path, "--update", saved_profile)
    assert code == exitcodes.OK
    data = json.loads(path.read_text())
    entry = data["pipelines"]["pipeline-0@train.py:30"]
    assert entry["rate"] == pytest.approx(10.0)
    assert entry["bottleneck"]["stage"] == "map-0"
    assert data["calibration"]["speed"] == SPEED
    assert out.startswith(f"## plumber gate: baseline recorded in `{path}`")


def test_unchanged_profile_passes(capsys, baseline, saved_profile) -> None:
    code, out, _ = gate(capsys, "--baseline", baseline, saved_profile)
    assert code == exitcodes.OK
    assert out.startswith("## plumber gate: PASS")


def test_baseline_three_times_faster_is_a_regression_with_junit(capsys, tmp_path, baseline,
                                                                 saved_profile) -> None:
    edit(baseline, lambda p: p.update(rate=p["rate"] * 3))
    junit = tmp_path / "reports" / "gate.xml"
    code, out, _ = gate(capsys, "--baseline", baseline, "--junit-xml", junit, saved_profile)
    assert code == exitcodes.GATE_REGRESSION
    assert "FAIL: throughput regression" in out
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure.get("type") == "regression"


def test_other_bottleneck_in_the_baseline_is_a_new_bottleneck(capsys, baseline,
                                                              saved_profile) -> None:
    edit(baseline, lambda p: p["bottleneck"].update(stage="map-1", kind="latency",
                                                       source="train.py:9"))
    code, out, _ = gate(capsys, "--baseline", baseline, "--tolerance", "5%", saved_profile)
    assert code == exitcodes.GATE_NEW_BOTTLENECK
    assert "from map-1 latency at train.py:9 to map-0 parallelism at train.py:12" in out


def test_consumer_bound_run_against_its_own_baseline_passes(capsys, tmp_path) -> None:
    saved = profile(consumer_bound()).save(tmp_path / "c.json")
    path = tmp_path / "c-baseline.json"
    assert gate(capsys, "--baseline", path, "--update", saved)[0] == exitcodes.OK
    assert gate(capsys, "--baseline", path, saved)[0] == exitcodes.OK


@pytest.mark.parametrize("content", [None, "{oops", '{"format": "plumber-gate-baseline", '
                                                    '"schema_version": 99}'])
def test_unusable_baseline_exits_12_with_one_line_and_a_junit_error(
    capsys, tmp_path, saved_profile, content
) -> None:
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    junit = tmp_path / "gate.xml"
    code, out, err = gate(capsys, "--baseline", path, "--junit-xml", junit, saved_profile)
    assert code == exitcodes.GATE_BAD_BASELINE
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("plumber: error: ") and str(path) in line
    assert ET.parse(junit).getroot().find("testsuite/testcase/error").get("type") == "baseline"


def test_script_options_with_a_saved_profile_are_a_usage_error(capsys, baseline,
                                                               saved_profile) -> None:
    code, _, err = gate(capsys, "--baseline", baseline, "--repeats", "2", saved_profile,
                        "--", "--x")
    assert code == exitcodes.USAGE
    assert "SCRIPT_ARGS, --repeats only apply when gating a script" in err


def test_corrupt_profile_is_a_usage_error(capsys, tmp_path, baseline) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    code, _, err = gate(capsys, "--baseline", baseline, bad)
    assert code == exitcodes.USAGE
    assert "not a plumber profile" in err


def test_missing_script_is_a_usage_error_before_the_baseline_is_read(capsys, tmp_path) -> None:
    code, _, err = gate(capsys, "--baseline", tmp_path / "none.json", tmp_path / "train.py")
    assert code == exitcodes.USAGE
    assert "no such script" in err


def test_assert_throughput_returns_the_result_when_the_pipeline_keeps_up(baseline,
                                                                         saved_profile) -> None:
    result = assert_throughput(saved_profile, baseline, tolerance=0.1)
    assert result.passed and result.rows[0].verdict == "pass"


def test_assert_throughput_fails_the_test_with_the_summary(baseline, saved_profile) -> None:
    edit(baseline, lambda p: p.update(rate=p["rate"] * 3))
    with pytest.raises(AssertionError, match="FAIL: throughput regression"):
        assert_throughput(saved_profile, baseline)


def test_assert_throughput_on_a_missing_baseline_is_an_error_not_a_failure(tmp_path,
                                                                            saved_profile) -> None:
    with pytest.raises(BaselineError, match="no baseline"):
        assert_throughput(saved_profile, tmp_path / "none.json")


def test_calibration_speed_is_the_median_and_spread_is_relative() -> None:
    calibration = Calibration.from_samples([90.0, 100.0, 110.0])
    assert calibration.speed == 100.0
    assert calibration.spread == pytest.approx(0.2)


def test_real_calibration_samples_are_positive_speeds() -> None:
    speeds = sample_speeds(2)
    assert len(speeds) == 2 and all(s > 0 for s in speeds)


def test_calibration_without_numpy_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(CalibrationUnavailable, match="pip install numpy"):
        sample_speeds(1)


def test_assert_throughput_runs_a_script_with_its_bounds(monkeypatch, tmp_path, baseline,
                                                         saved_profile) -> None:
    from plumber.gate import runner

    seen = {}

    def fake_measure_script(script, args, options, notify):
        seen.update(script=script, args=list(args), options=options)
        return runner.measure_profile(saved_profile, notify)

    monkeypatch.setattr("plumber.gate.api.measure_script", fake_measure_script)
    assert_throughput(tmp_path / "train.py", baseline, script_args=["--fast"], repeats=2,
                      steps=50, duration_s=9.0, cpu_probe_s=0.5)
    assert seen == {"script": tmp_path / "train.py", "args": ["--fast"],
                    "options": RunOptions(repeats=2, steps=50, duration_s=9.0, cpu_probe_s=0.5)}
