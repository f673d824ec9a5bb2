"""A damaged baseline never switches the gate off, and the tolerance means one thing.

A baseline whose expectation is NaN, zero, negative or infinite, whose
calibration speed is infinite, or which holds no pipeline would let every
run pass: each is refused (exit 12, one line). The command line's
``--tolerance`` and ``assert_throughput(tolerance=...)`` agree: the command
line takes a percentage with its ``%`` sign and refuses a bare number (is
0.1 a tenth or 0.1%?); the function takes a fraction and refuses 1 or more.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
from test_gate_cli import SPEED, edit, fixed_machine_speed, gate  # noqa: F401
from test_gate_measure import map_bound, profile

from plumber.commands.gate import tolerance
from plumber.gate import BaselineError, assert_throughput
from plumber.gate.baseline import load_baseline
from plumber.records import exitcodes

KEY = "pipeline-0@train.py:30"


@pytest.fixture
def saved_profile(tmp_path) -> Path:
    return profile(map_bound(10.0)).save(tmp_path / "run" / "profile.json")


@pytest.fixture
def baseline(capsys, tmp_path, saved_profile) -> Path:
    path = tmp_path / "baseline.json"
    assert gate(capsys, "--baseline", path, "--update", saved_profile)[0] == exitcodes.OK
    return path


def rewrite(path: Path, change) -> Path:
    """Apply ``change`` to the parsed baseline and write it back (NaN/Infinity as JSON allows)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def set_rate(value):
    return lambda d: d["pipelines"][KEY].update(rate=value)


DAMAGE = [
    (set_rate(math.nan), "rate must be a positive number"),
    (set_rate(0), "rate must be a positive number"),
    (set_rate(-5.0), "rate must be a positive number"),
    (set_rate(math.inf), "rate must be a positive number"),
    (lambda d: d["pipelines"][KEY].update(rate=None, bottleneck=None), "gates nothing"),
    (lambda d: d["pipelines"][KEY].update(rates=[math.inf]), "rates must be"),
    (lambda d: d["calibration"].update(speed=math.inf), "calibration speed must be a positive"),
    (lambda d: d["calibration"].update(speed=math.nan), "calibration speed must be a positive"),
    (lambda d: d["calibration"].update(samples=[-1.0]), "calibration samples must be positive"),
    (lambda d: d.update(pipelines={}), "holds no pipeline, so it gates nothing"),
    (lambda d: d["machine"].update(cores_usable=math.nan), "cores_usable must be a positive"),
    (lambda d: d.update(repeats=0), "repeats must be a positive integer"),
    (lambda d: d["machine"].update(cores_logical=True), "cores_logical must be a positive integer"),
    (lambda d: d["machine"].update(cores_logical=2.5), "cores_logical must be a positive integer"),
    (lambda d: d["machine"].update(cores_logical="8"), "cores_logical must be a positive integer"),
    (lambda d: d["machine"].update(cores_logical=0), "cores_logical must be a positive integer"),
]


@pytest.mark.parametrize(("damage", "reason"), DAMAGE)
def test_a_damaged_baseline_exits_12_with_one_line(capsys, baseline, saved_profile, damage,
                                                    reason) -> None:
    rewrite(baseline, damage)
    code, out, err = gate(capsys, "--baseline", baseline, saved_profile)
    assert code == exitcodes.GATE_BAD_BASELINE, out
    (line,) = err.strip().splitlines()
    assert line.startswith(f"plumber: error: {baseline} is malformed: ") and reason in line


@pytest.mark.parametrize(("damage", "reason"), DAMAGE[:4])
def test_assert_throughput_on_a_damaged_baseline_is_an_error(baseline, saved_profile, damage,
                                                             reason) -> None:
    rewrite(baseline, damage)
    with pytest.raises(BaselineError, match=reason):
        assert_throughput(saved_profile, baseline)


def test_a_baseline_nested_too_deeply_exits_12(capsys, baseline, saved_profile) -> None:
    baseline.write_text("[" * 100_000)
    code, _, err = gate(capsys, "--baseline", baseline, saved_profile)
    assert code == exitcodes.GATE_BAD_BASELINE
    assert err.strip() == (f"plumber: error: baseline {baseline} is not valid JSON "
                           f"(nested too deeply)")


def test_an_unmeasured_rate_with_its_bottleneck_still_loads(baseline) -> None:
    rewrite(baseline, set_rate(None))
    (expected,) = load_baseline(baseline).pipelines
    assert math.isnan(expected.rate) and expected.bottleneck is not None


@pytest.mark.parametrize(("text", "value"),
                         [("10%", 0.10), ("0.5%", 0.005), (" 0% ", 0.0), ("99.5 %", 0.995)])
def test_the_command_line_tolerance_is_a_percentage_with_its_sign(text, value) -> None:
    assert tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0.1", "10", "0"])
def test_a_bare_number_is_refused_as_ambiguous(text) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"needs a % sign \(write 10% to allow"):
        tolerance(text)


def test_a_bare_number_on_the_command_line_exits_2_before_anything_runs(capsys, baseline,
                                                                        saved_profile) -> None:
    with pytest.raises(SystemExit) as exit_:
        gate(capsys, "--baseline", baseline, "--tolerance", "0.1", saved_profile)
    assert exit_.value.code == exitcodes.USAGE
    assert "--tolerance needs a % sign" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [10, 1.0, -0.1, math.nan, "10%", True])
def test_assert_throughput_refuses_a_tolerance_that_is_not_a_fraction(baseline, saved_profile,
                                                                       bad) -> None:
    with pytest.raises(ValueError, match=r"tolerance is a fraction \(0.1 allows 10%"):
        assert_throughput(saved_profile, baseline, tolerance=bad)


@pytest.mark.parametrize(("slower_by", "passes"), [(0.05, True), (0.15, False)])
def test_10_percent_on_the_command_line_and_0_1_in_a_test_give_the_same_verdict(
    capsys, baseline, saved_profile, slower_by, passes
) -> None:
    edit(baseline, lambda p: p.update(rate=p["rate"] / (1 - slower_by)))
    code, _, _ = gate(capsys, "--baseline", baseline, "--tolerance", "10%", saved_profile)
    assert (code == exitcodes.OK) is passes
    if passes:
        assert assert_throughput(saved_profile, baseline, tolerance=0.1).passed
    else:
        assert code == exitcodes.GATE_REGRESSION
        with pytest.raises(AssertionError, match="throughput regression"):
            assert_throughput(saved_profile, baseline, tolerance=0.1)
