"""``plumber run --plan`` with a tf.data file cache, run after run: a changed pipeline gets a new
cache, a run killed with SIGKILL does not block the next one, a crashed run is not reported as
applied."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_plumber

from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting

pytestmark = pytest.mark.slow

SCRIPT = '''\
import os, sys, time
import tensorflow as tf

factor = int(sys.argv[1])
dataset = tf.data.Dataset.range(6)
dataset = dataset.map(lambda x: x * factor)  # the cached stage
for position, element in enumerate(dataset):
    if position == 3 and os.environ.get("PAUSE_MID_EPOCH"):
        print("paused", flush=True)
        time.sleep(600)
print("elements", [int(x) for x in dataset], flush=True)
if sys.argv[2:] == ["--fail"]:
    raise RuntimeError("the training step failed")
'''
CACHED_LINE = 6


def write_script_and_plan(folder: Path) -> tuple[Path, Path, Path]:
    """The script, its plan (a file cache after the map) and the cache's planned location."""
    script = folder / "train.py"
    script.write_text(SCRIPT)
    location = folder / "caches" / "train-p0-map-0"
    stage = StageRef(script.name, CACHED_LINE, "map")
    plan = Plan(script=str(script), pipelines=(PipelinePlan(
        root=stage, settings=(StageSetting(stage, "map-0", cache=str(location)),)),))
    plan.save(folder / "plan.json")
    return script, folder / "plan.json", location


def elements(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("elements"))


def test_a_second_run_with_another_argument_reads_new_elements_not_the_old_cache(tmp_path):
    script, plan, location = write_script_and_plan(tmp_path)
    first = run_plumber(["run", "--plan", str(plan), str(script), "--", "1"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert elements(first.stdout) == "elements [0, 1, 2, 3, 4, 5]"
    assert "plan applied at map at train.py:6: cache (" in first.stderr
    second = run_plumber(["run", "--plan", str(plan), str(script), "--", "100"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert elements(second.stdout) == "elements [0, 100, 200, 300, 400, 500]"
    indexes = sorted(location.glob("*.index"))
    assert len(indexes) == 1, "the first run's cache, no longer current, is removed"
    written = indexes[0].stat().st_mtime_ns
    third = run_plumber(["run", "--plan", str(plan), str(script), "--", "100"], cwd=tmp_path)
    assert elements(third.stdout) == "elements [0, 100, 200, 300, 400, 500]"
    assert sorted(location.glob("*.index")) == indexes, "the same pipeline finds its cache"
    assert indexes[0].stat().st_mtime_ns == written, "and reads it rather than write it again"


def test_a_run_killed_mid_epoch_leaves_no_lock_that_stops_the_next_run(tmp_path):
    script, plan, location = write_script_and_plan(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PAUSE_MID_EPOCH": "1",
           "PLUMBER_CACHE_DIR": str(tmp_path / "cache")}
    killed = subprocess.Popen(
        [sys.executable, "-m", "plumber", "run", "--plan", str(plan), str(script), "--", "7"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert killed.stdout is not None
        assert killed.stdout.readline().strip() == "paused"
        assert list(location.parent.rglob("*.lockfile")), "the killed run was writing the cache"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
    rerun = run_plumber(["run", "--plan", str(plan), str(script), "--", "7"], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert elements(rerun.stdout) == "elements [0, 7, 14, 21, 28, 35]"
    assert not list(location.parent.rglob("*.lockfile"))
    assert not list(location.glob(f"*{killed.pid}*")), "the killed run's records are gone"


def test_a_crashed_run_is_not_reported_as_a_plan_applied(tmp_path):
    script, plan, _ = write_script_and_plan(tmp_path)
    crashed = run_plumber(["run", "--plan", str(plan), str(script), "--", "2", "--fail"],
                          cwd=tmp_path)
    assert crashed.returncode == 1
    assert "RuntimeError: the training step failed" in crashed.stderr
    assert "plan applied" not in crashed.stderr
    assert "the script failed" in crashed.stderr and "map at train.py:6" in crashed.stderr
