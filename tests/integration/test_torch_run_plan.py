"""``plumber run --plan PLAN.json SCRIPT`` on a PyTorch script, with a hand-written plan."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PIPELINES

from plumber.records.plan import PLAN_SCHEMA_VERSION
from plumber.records.profile import Profile

pytest.importorskip("torch")
pytest.importorskip("torchvision")

pytestmark = pytest.mark.slow

SCRIPT = PIPELINES / "torch_plan_target.py"
LOADER_LINE = next(i for i, line in enumerate(SCRIPT.read_text().splitlines(), 1)
                   if line.endswith("# the loader"))
NAME = SCRIPT.name


def plan(schema_version: int = 1) -> dict:
    def stage(kind: str) -> dict:
        return {"file": NAME, "line": LOADER_LINE, "kind": kind, "occurrence": 0}

    return {
        "kind": "plumber-plan", "schema_version": schema_version, "script": str(SCRIPT),
        "pipelines": [{
            "root": stage("workers"),
            "settings": [
                {"stage": stage("workers"), "stage_id": "workers", "parallelism": 2},
                {"stage": stage("map"), "stage_id": "transform_1", "cache": "memory"},
                {"stage": stage("map"), "stage_id": "transform_7", "cache": "memory"},
            ],
        }],
    }


def test_run_with_a_plan_builds_the_tuned_loader_and_passes_the_script_through(plumber_cli,
                                                                              tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(plan()))
    tuned = plumber_cli("run", "--plan", tmp_path / "plan.json", SCRIPT, "--", "--exit", "3")
    plain = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                           timeout=300)
    assert tuned.returncode == 3, tuned.stderr[-2000:]
    assert tuned.stdout == plain.stdout and tuned.stdout.count("labels [0, 1,") == 2
    assert "num_workers=2 dataset=CachedDataset" in tuned.stderr
    assert "fetched 8 samples" in tuned.stderr and "fetched 16 samples" in plain.stderr
    where = f"of the DataLoader at {NAME}:{LOADER_LINE}"
    assert "the script failed (exit status 3)" in tuned.stderr
    assert "plan applied" not in tuned.stderr, "a run that failed is not reported as applied"
    assert f"plan in force at workers {where}: num_workers=0 -> num_workers=2" in tuned.stderr
    assert f"plan in force at transform_1 {where}: cache (memory: /" in tuned.stderr
    assert (f"plan stage not found, left as written: map at {NAME}:{LOADER_LINE} "
            f"(transform_7)") in tuned.stderr


def test_run_refuses_a_plan_with_a_newer_schema(plumber_cli, tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps(plan(schema_version=PLAN_SCHEMA_VERSION + 1)))
    run = plumber_cli("run", "--plan", tmp_path / "plan.json", SCRIPT)
    assert run.returncode == 2 and run.stdout == ""
    assert "newer than this plumber understands" in run.stderr


def test_profile_with_a_plan_profiles_the_tuned_loader_and_checks_its_prediction(plumber_cli,
                                                                                 tmp_path):
    tuned = plan(PLAN_SCHEMA_VERSION)
    tuned["pipelines"][0]["predicted_rate"] = 50.0
    (tmp_path / "plan.json").write_text(json.dumps(tuned))
    run = plumber_cli("profile", "--plan", tmp_path / "plan.json", SCRIPT, "-o", "out")
    assert run.returncode == 0, run.stderr[-2000:]
    where = f"of the DataLoader at {NAME}:{LOADER_LINE}"
    assert f"plan applied at workers {where}: num_workers=0 -> num_workers=2" in run.stderr
    profile = Profile.load(run.profile_path)
    [loader] = profile.pipelines
    stages = {s.id: s for s in loader.stages}
    assert stages["workers"].knobs["num_workers"] == 2
    # The plan's cache replays the transforms after transform_1 in the workers: they are
    # timed as their stages (not left in fetch), and no second cache is proposed.
    assert stages["workers"].knobs["sample_cache"] == 1
    assert all(stages[t].stats is not None and stages[t].stats.elements == 16
               for t in ("transform_2", "transform_3")), stages
    assert "Cache the samples" not in run.stderr
    assert any("transform_7" in line for line in profile.applied_plan.changes)
    summary = " ".join(run.stderr.split())
    assert f"the plan for the pipeline at workers at {NAME}:{LOADER_LINE} was predicted 50/s" \
        in summary and "prediction error" in summary
