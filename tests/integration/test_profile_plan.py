"""``plumber profile --plan``: a profile of the script with a plan in force.

GIVEN a plan that raises the planted map's parallelism and carries the
model's prediction for it, WHEN the script is profiled with the plan, THEN
the map runs with the planned setting, the profile records the plan and
what it changed, and the summary and report set the prediction against the
rate this run measured. (With ``--data-service``: tests/integration/test_data_service.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PIPELINES

from plumber.records.exitcodes import USAGE
from plumber.records.plan import StageRef, StageSetting, settings_fingerprint
from plumber.records.profile import Profile

pytestmark = pytest.mark.slow

SCRIPT = PIPELINES / "expensive_map.py"
MAP_LINE = next(i for i, line in enumerate(SCRIPT.read_text().splitlines(), 1)
                if "dataset.map(" in line)
ROOT_LINE = MAP_LINE + 2


def write_plan(folder: Path, predicted: float, parallelism: int = 2) -> Path:
    """A plan setting the map's parallelism, whose prediction was made for parallelism 2."""
    plan = folder / "plan.json"
    ref = {"file": SCRIPT.name, "line": MAP_LINE, "kind": "map"}
    predicted_for = settings_fingerprint([StageSetting(StageRef(**ref), "map-0", parallelism=2)])
    plan.write_text(json.dumps({
        "kind": "plumber-plan", "schema_version": 2, "script": SCRIPT.name, "notes": [],
        "rejected": [],
        "pipelines": [{
            "root": {"file": SCRIPT.name, "line": ROOT_LINE, "kind": "prefetch"},
            "predicted_rate": predicted,
            "predicted_for": predicted_for,
            "settings": [{"stage": ref, "stage_id": "map-0", "parallelism": parallelism,
                          "reason": "planted", "predicted_rate": predicted}],
        }],
    }))
    return plan


def test_a_profile_with_a_plan_records_it_and_sets_its_prediction_against_the_run(
        tmp_path, plumber_cli):
    plan = write_plan(tmp_path, predicted=1000.0)
    run = plumber_cli("profile", "--plan", plan, SCRIPT, "-o", "out", "--", "--elements", "480")
    assert run.returncode == 0, run.stderr
    assert f"plan applied at map at {SCRIPT.name}:{MAP_LINE}: " in run.stderr
    profile = Profile.load(run.profile_path)
    assert profile.applied_plan is not None
    assert profile.applied_plan.file == str(plan)
    assert any(f"map at {SCRIPT.name}:{MAP_LINE}" in line for line in profile.applied_plan.changes)
    [pipeline] = profile.pipelines
    [planted] = [s for s in pipeline.stages if s.kind == "map" and s.source is not None]
    assert planted.knobs.get("parallelism") == 2
    [predicted] = profile.applied_plan.predicted
    assert (predicted.basis, predicted.line, predicted.rate) == ("settings", ROOT_LINE, 1000.0)
    # The pipeline is matched and the prediction's error published: far off, as planted.
    assert "was predicted 1,000/s; pipeline-0 measured" in " ".join(run.stderr.split())
    assert "prediction error" in run.stderr
    report = run.report_path.read_text()
    assert "This run applied the plan" in report and "prediction error" in report


def test_a_plan_edited_after_its_prediction_is_applied_but_not_checked_against_it(
        tmp_path, plumber_cli):
    # The prediction was made for parallelism 2; the user set 3 by hand.
    plan = write_plan(tmp_path, predicted=1000.0, parallelism=3)
    run = plumber_cli("profile", "--plan", plan, SCRIPT, "-o", "out", "--", "--elements", "480")
    assert run.returncode == 0, run.stderr
    profile = Profile.load(run.profile_path)
    [pipeline] = profile.pipelines
    [planted] = [s for s in pipeline.stages if s.kind == "map" and s.source is not None]
    assert planted.knobs.get("parallelism") == 3
    [predicted] = profile.applied_plan.predicted
    assert predicted.for_other_settings and predicted.rate == 1000.0
    said = " ".join(run.stderr.split())
    assert "holds other settings than the 1,000/s it records was predicted for" in said
    assert "so this run is not checked against it; pipeline-0 measured" in said
    assert "prediction error" not in run.stderr
    report = " ".join(run.report_path.read_text().split())
    assert "This run applied the plan" in report
    assert "so this run is not checked against it; pipeline-0 measured" in report
    # The one prediction error left is the model's for the run as it ran.
    assert report.count("prediction error") == 1 and "as it ran (prediction error" in report


def test_data_service_without_a_plan_is_a_usage_error(tmp_path, plumber_cli):
    run = plumber_cli("profile", "--data-service", "grpc://localhost:1", SCRIPT, "-o", "out")
    assert run.returncode == USAGE
    assert "--data-service needs --plan" in run.stderr
    assert not (tmp_path / "out").exists()


def test_service_workers_without_a_data_service_is_a_usage_error(tmp_path, plumber_cli):
    plan = write_plan(tmp_path, predicted=1000.0)
    run = plumber_cli("profile", "--plan", plan, "--service-workers", "2", SCRIPT, "-o", "out")
    assert run.returncode == USAGE
    assert "--service-workers needs --data-service" in run.stderr
    assert not (tmp_path / "out").exists()


def test_an_unreadable_plan_is_a_usage_error_before_the_script_runs(tmp_path, plumber_cli):
    (tmp_path / "plan.json").write_text("{not json")
    run = plumber_cli("profile", "--plan", tmp_path / "plan.json", SCRIPT, "-o", "out")
    assert run.returncode == USAGE
    assert "plan.json" in run.stderr and "done" not in run.stdout
    assert not (tmp_path / "out").exists()
