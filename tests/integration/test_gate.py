"""``plumber gate`` on real tf.data pipelines: the project's own CI gate, and every way it fails.

The committed baselines in ``.ci/gate-baselines/`` were recorded on the
project's CI machine with ``plumber gate --update`` and the same script
arguments as here. The project's gate allows 20%, not the default 10%: its
runner is a shared 2-core machine where other jobs take cores the
single-threaded calibration cannot see (README, "CI performance gate").
"""

from __future__ import annotations

import json
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import PIPELINES, REPO

from plumber.gate import assert_throughput
from plumber.gate.baseline import SCHEMA_VERSION
from plumber.records import exitcodes

pytestmark = pytest.mark.slow

BASELINES = REPO / ".ci" / "gate-baselines"
PROJECT_TOLERANCE = "20%"
EXPENSIVE_MAP = (PIPELINES / "expensive_map.py", "--elements", "400")
SLOW_CONSUMER = (PIPELINES / "slow_consumer.py", "--steps", "60")
EXPENSIVE_MAP_KEY = "pipeline-0@expensive_map.py:28"


def tampered(tmp_path: Path, change) -> Path:
    """A copy of expensive_map's committed baseline with its one pipeline edited."""
    data = json.loads((BASELINES / "expensive_map.json").read_text())
    change(data["pipelines"][EXPENSIVE_MAP_KEY])
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("target", [EXPENSIVE_MAP, SLOW_CONSUMER], ids=["expensive_map",
                                                                        "slow_consumer"])
def test_example_pipelines_keep_their_committed_baselines(plumber_cli, tmp_path, target):
    script, *args = target
    run = plumber_cli("gate", "--baseline", BASELINES / f"{script.stem}.json",
                      "--tolerance", PROJECT_TOLERANCE, "--repeats", "2",
                      "--junit-xml", "gate.xml", "-o", "runs", script, "--", *args)
    assert run.returncode == exitcodes.OK, run.stdout + run.stderr[-3000:]
    assert run.stdout.startswith("## plumber gate: PASS")
    (case,) = ET.parse(tmp_path / "gate.xml").getroot().iter("testcase")
    assert case.get("name").startswith("pipeline-0@") and case.find("failure") is None
    assert (tmp_path / "runs" / "run-2" / "profile.json").exists()


def test_planted_regression_fails_with_the_regression_code(plumber_cli, tmp_path):
    baseline = tampered(tmp_path, lambda p: p.update(rate=p["rate"] * 3))
    script, *args = EXPENSIVE_MAP
    run = plumber_cli("gate", "--baseline", baseline, "--repeats", "1",
                      "--junit-xml", "gate.xml", script, "--", *args)
    assert run.returncode == exitcodes.GATE_REGRESSION, run.stdout + run.stderr[-3000:]
    assert run.stdout.startswith("## plumber gate: FAIL: throughput regression")
    assert "below the calibrated expectation" in run.stdout
    failure = ET.parse(tmp_path / "gate.xml").getroot().find("testsuite/testcase/failure")
    assert failure.get("type") == "regression"


def test_changed_bottleneck_fails_with_the_new_bottleneck_code(plumber_cli, tmp_path):
    # The rate is halved so only the bottleneck, not the machine's noise, can fail the gate.
    def change(p):
        p["rate"] /= 2
        p["bottleneck"] = {"stage": "source-0", "kind": "latency", "input_bound": True,
                           "source": "expensive_map.py:25"}

    script, *args = EXPENSIVE_MAP
    run = plumber_cli("gate", "--baseline", tampered(tmp_path, change), "--repeats", "1",
                      script, "--", *args)
    assert run.returncode == exitcodes.GATE_NEW_BOTTLENECK, run.stdout + run.stderr[-3000:]
    assert run.stdout.startswith("## plumber gate: FAIL: new bottleneck")
    assert ("moved from source-0 latency at expensive_map.py:25 to map-0 parallelism at "
            "expensive_map.py:26") in run.stdout


def newer_schema(path: Path) -> None:
    data = json.loads((BASELINES / "expensive_map.json").read_text())
    path.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (lambda path: None, "no baseline at"),
        (lambda path: path.write_text('{"format": "plumber-gate-baseline", "schema'),
         "is not valid JSON"),
        (newer_schema, f"baseline schema version {SCHEMA_VERSION + 1} is newer than this plumber"),
    ],
    ids=["missing", "corrupt", "newer-schema"],
)
def test_unusable_baseline_exits_with_its_code_and_one_line(plumber_cli, tmp_path, prepare,
                                                           reason):
    baseline = tmp_path / "baseline.json"
    prepare(baseline)
    script, *args = EXPENSIVE_MAP
    run = plumber_cli("gate", "--baseline", baseline, script, "--", *args)
    assert run.returncode == exitcodes.GATE_BAD_BASELINE
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("plumber: error: ") and reason in line
    assert str(baseline) in line
    assert run.stdout == ""


def test_failing_script_exits_with_the_script_failure_code_and_its_output(plumber_cli,
                                                                          tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(textwrap.dedent("""
        import tensorflow as tf
        for batch in tf.data.Dataset.range(8).batch(2):
            pass
        raise ValueError("the data is gone")
    """))
    shutil.copy(BASELINES / "expensive_map.json", tmp_path / "baseline.json")
    run = plumber_cli("gate", "--baseline", "baseline.json", "--cpu-probe", "0", script)
    assert run.returncode == exitcodes.GATE_SCRIPT_FAILED
    assert "ValueError: the data is gone" in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "plumber: error: the script failed in run 1 with exit status 1"
    )


def test_pytest_helper_asserts_a_script_keeps_its_throughput():
    script, *args = EXPENSIVE_MAP
    result = assert_throughput(script, BASELINES / "expensive_map.json", tolerance=0.2,
                               script_args=args, repeats=1)
    (row,) = result.rows
    assert row.key == EXPENSIVE_MAP_KEY and row.verdict == "pass"
