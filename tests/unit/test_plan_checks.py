"""Every value of a plan file is checked when the plan is loaded, before any script runs.

A hostile or careless plan (a million threads, parallelism "abc", a cache
path leaving the cache folder) must be refused with a one-line reason, not
crash the user's script inside TF or take the machine down.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plumber.records.plan import (
    PipelinePlan,
    Plan,
    PlanError,
    StageRef,
    StageSetting,
    made_for_another_script,
)
from plumber.records.planchecks import parallelism_limit, threads_limit

TF_REF = StageRef("train.py", 12, "map")
LOADER_REF = StageRef("train.py", 20, "workers")
CORES = os.cpu_count() or 1


def plan_file(tmp_path: Path, *settings: dict, root: dict | None = None) -> Path:
    """A plan with one pipeline holding ``settings`` (each a dict of knobs)."""
    data = json.loads(Plan(script="train.py").to_json())
    data["pipelines"] = [{
        "root": root or vars(TF_REF),
        "settings": [{"stage": vars(TF_REF), "stage_id": "map-0", **knobs} for knobs in settings],
    }]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    return path


def loader_plan_file(tmp_path: Path, stage_id: str = "workers", **knobs) -> Path:
    data = json.loads(Plan(script="train.py").to_json())
    ref = {**vars(LOADER_REF), "kind": stage_id}
    data["pipelines"] = [{
        "root": ref,
        "settings": [{"stage": ref, "stage_id": stage_id, **knobs}],
    }]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    return path


def refused(path: Path) -> str:
    with pytest.raises(PlanError) as caught:
        Plan.load(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        ({"threads": 1_000_000}, "threads must be an integer from 0 to"),
        ({"threads": -3}, "threads must be an integer from 0 to"),
        ({"threads": "8"}, "threads must be an integer"),
        ({"parallelism": 0}, "parallelism must be -1 (AUTOTUNE) or an integer from 1 to"),
        ({"parallelism": -5}, "parallelism must be -1 (AUTOTUNE)"),
        ({"parallelism": 2.5}, "parallelism must be -1 (AUTOTUNE)"),
        ({"parallelism": "abc"}, "not 'abc'"),
        ({"parallelism": True}, "parallelism must be"),
        ({"parallelism": 64 * CORES + 1}, f"from 1 to {64 * CORES}"),
        ({"prefetch": -7}, "prefetch must be -1 (AUTOTUNE) or an integer from 0 to"),
        ({"prefetch": 10**9}, "prefetch must be -1 (AUTOTUNE) or an integer from 0 to"),
        ({"cache": 5}, 'cache must be "memory" or a path'),
        ({"cache": ""}, 'cache must be "memory" or a path'),
        ({"cache": "../../.ssh/x"}, "leaves plumber's cache folder"),
        ({"cache": "a/../../x"}, "leaves plumber's cache folder"),
        ({"cache": "."}, "leaves plumber's cache folder"),
        ({"object_cache": ["memory"]}, 'object_cache must be "memory" or a path'),
        ({"object_cache": "../objects"}, "leaves plumber's cache folder"),
        ({"persistent_workers": "yes"}, "persistent_workers must be true or false"),
        ({"pin_memory": 1}, "pin_memory must be true or false"),
        ({"predicted_rate": "fast"}, "predicted_rate must be a number"),
        ({"reason": 3}, "reason must be a string"),
    ],
)
def test_each_bad_stage_value_is_refused_with_one_line_naming_it(tmp_path, knobs, reason):
    message = refused(plan_file(tmp_path, knobs))
    assert reason in message
    assert "map at train.py:12 (map-0)" in message


@pytest.mark.parametrize(
    ("knobs", "reason"),
    [
        ({"parallelism": -1}, "parallelism must be an integer from 0 to"),
        ({"parallelism": -2}, "parallelism must be an integer from 0 to"),
        ({"parallelism": 64 * CORES + 1}, f"from 0 to {64 * CORES}"),
    ],
)
@pytest.mark.parametrize("stage_id", ["workers", "pin_memory"])
def test_a_loader_s_num_workers_is_zero_or_more_and_bounded(tmp_path, knobs, reason, stage_id):
    assert reason in refused(loader_plan_file(tmp_path, stage_id, **knobs))


def test_a_plan_nested_too_deeply_is_refused_in_one_line(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[" * 100_000)
    with pytest.raises(PlanError, match="not a readable JSON plan \\(nested too deeply\\)"):
        Plan.load(path)


def test_values_within_the_limits_load(tmp_path):
    plan = Plan.load(plan_file(
        tmp_path,
        {"parallelism": -1, "prefetch": -1, "threads": 0, "cache": "memory",
         "object_cache": "memory", "predicted_rate": 12},
    ))
    (setting,) = plan.pipelines[0].settings
    assert (setting.parallelism, setting.prefetch, setting.threads) == (-1, -1, 0)
    assert Plan.load(plan_file(tmp_path, {"parallelism": 64 * CORES, "prefetch": 0}))
    assert Plan.load(loader_plan_file(tmp_path, parallelism=0, prefetch=4,
                                      persistent_workers=False, pin_memory=True))


def test_the_limits_follow_the_machine():
    assert parallelism_limit(2) == 128 and parallelism_limit(8) == 512
    # tune may write a pool for several waiting stages: never below 1024 threads
    assert threads_limit(2) == 1024 and threads_limit(32) == 2048


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(script=7), "script must be a string"),
        (lambda d: d.update(notes="a note"), "notes must be a list of strings"),
        (lambda d: d.update(pipelines={"a": 1}), "pipelines must be a list"),
        (lambda d: d["pipelines"][0]["settings"][0]["stage"].update(line="12"),
         "line must be an integer"),
        (lambda d: d["pipelines"][0]["settings"][0]["stage"].update(occurrence=-1),
         "occurrence must be an integer from 0"),
        (lambda d: d["pipelines"][0]["settings"][0].update(stage_id=None),
         "stage_id must be a string"),
        (lambda d: d["pipelines"][0].update(observed_rate="x"), "observed_rate must be a number"),
        (lambda d: d["pipelines"][0].update(measured_rates_after=[1, "x"]),
         "measured_rates_after must be a list of numbers"),
    ],
)
def test_bad_plan_structure_is_refused_with_one_line(tmp_path, change, reason):
    path = plan_file(tmp_path, {"parallelism": 2})
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    assert reason in refused(path)


def test_a_relative_cache_path_resolves_inside_plumber_s_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUMBER_CACHE_DIR", str(tmp_path / "cache"))
    plan = Plan.load(plan_file(tmp_path, {"cache": "runs/../train-map"},
                               {"object_cache": "objects"}))
    first, second = plan.pipelines[0].settings
    assert first.cache == str(tmp_path / "cache" / "data" / "train-map")
    assert second.object_cache == str(tmp_path / "cache" / "data" / "objects")


def test_an_absolute_cache_path_is_kept_and_a_home_path_expanded(tmp_path):
    plan = Plan.load(plan_file(tmp_path, {"cache": "/scratch/cache/map"},
                               {"object_cache": "~/objects"}))
    first, second = plan.pipelines[0].settings
    assert first.cache == "/scratch/cache/map"
    assert second.object_cache == str(Path.home() / "objects")


def test_an_infinite_rate_is_saved_as_null_so_the_file_is_json(tmp_path):
    setting = StageSetting(TF_REF, "map-0", cache="memory", predicted_rate=math.inf)
    plan = Plan(script="train.py", pipelines=(PipelinePlan(
        TF_REF, (setting,), observed_rate=10.0, predicted_rate=math.inf,
        measured_rates_after=(math.inf, 3.0)),))
    path = plan.save(tmp_path / "plan.json")
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the plan"))
    assert data["pipelines"][0]["predicted_rate"] is None
    assert data["pipelines"][0]["settings"][0]["predicted_rate"] is None
    assert data["pipelines"][0]["measured_rates_after"] == [None, 3.0]
    loaded = Plan.load(path)
    assert loaded.pipelines[0].predicted_rate is None
    assert loaded.pipelines[0].measured_rates_after == (None, 3.0)


def test_a_plan_made_for_another_script_is_noticed():
    plan = Plan(script="/home/me/project/train.py")
    assert made_for_another_script(plan, Path("ci/checkout/train.py")) is None
    warning = made_for_another_script(plan, Path("evaluate.py"))
    assert warning == ("the plan was made for train.py, not evaluate.py; only stages at the "
                       "same file and line get its settings")


def test_optimize_refuses_a_bad_plan_file_with_the_same_message(tmp_path):
    import plumber

    path = plan_file(tmp_path, {"parallelism": "abc"})
    with pytest.raises(PlanError) as caught:
        plumber.optimize(lambda: None, plan=path)
    assert str(caught.value) == refused(path)



def test_optimize_checks_a_plan_built_in_code_as_it_checks_a_file():
    import plumber

    plan = Plan(script="train.py", pipelines=(PipelinePlan(
        root=TF_REF, settings=(StageSetting(stage=TF_REF, stage_id="map-0", threads=10**6),),
    ),))
    with pytest.raises(PlanError, match="threads must be an integer from 0 to"):
        plumber.optimize(lambda: None, plan=plan)

MARKER_SCRIPT = """\
from pathlib import Path
Path(__file__).with_name("ran").write_text("the script ran")
"""


@pytest.mark.parametrize("knobs", [{"threads": 1_000_000}, {"cache": 5}])
def test_run_refuses_a_bad_plan_in_one_line_with_exit_2_before_the_script_runs(tmp_path, knobs):
    script = tmp_path / "train.py"
    script.write_text(MARKER_SCRIPT)
    plan = plan_file(tmp_path, knobs)
    run = subprocess.run([sys.executable, "-m", "plumber", "run", "--plan", str(plan),
                          str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"plumber: error: {plan}: ")
    assert not (tmp_path / "ran").exists()


def test_run_warns_when_the_plan_was_made_for_another_script_and_runs_it(tmp_path):
    script = tmp_path / "evaluate.py"
    script.write_text(MARKER_SCRIPT)
    plan = Plan(script="train.py").save(tmp_path / "plan.json")
    run = subprocess.run([sys.executable, "-m", "plumber", "run", "--plan", str(plan),
                          str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert ("plumber: warning: the plan was made for train.py, not evaluate.py" in run.stderr)
    assert (tmp_path / "ran").exists()
