"""``plumber tune`` and ``plumber run --plan`` on real tf.data scripts.

Speed is a benchmark's business (BENCHMARKS.md), not a test's: these tests
check the plan the model derives from the profile ``tune`` saved, that
``tune`` verified it and reported the outcome either way, and that applying
a plan keeps the script's output.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PIPELINES

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.plan import Plan
from plumber.records.profile import Profile
from plumber.tuner.derive import derive_plan

pytestmark = pytest.mark.slow

#: What tune prints after verifying: the outcome (plumber.analyzers.edits.outcome), or the drop.
VERIFIED = (" tuned (", "is not faster; keeping the pipeline as written")


#: Most tests here measure in tune's own process (no framework import per run); the first
#: measures as users do, each run a fresh process.
REUSE = ("--reuse-process",)


def tuned(plumber_cli, tmp_path, script, *script_args, options=REUSE):
    """Run ``plumber tune``; return its run and the plan the model derived (before verifying)."""
    out = tmp_path / "out"
    run = plumber_cli("tune", "-o", out / "plan.json", "--rounds", "1", *options, script,
                      *script_args)
    assert run.returncode == 0, run.stderr[-3000:]
    assert any(outcome in run.stderr for outcome in VERIFIED), run.stderr[-2000:]
    profile = Profile.load(out / "profile.json")
    derived = derive_plan(profile, diagnose_all(profile), script)
    saved = Plan.load(out / "plan.json")
    # tune keeps the derived plan when verification measured it faster, else none
    assert not saved.pipelines or [p.settings for p in saved.pipelines] == [
        p.settings for p in derived.pipelines]
    return run, derived, saved


def test_tune_raises_the_parallelism_of_the_planted_map(plumber_cli, tmp_path):
    # 400 elements, as the CI gate runs it: a third of the default, in every verifying run too.
    run, plan, saved = tuned(plumber_cli, tmp_path, PIPELINES / "expensive_map.py",
                             "--", "--elements", "400", options=())
    (pipeline,) = plan.pipelines
    settings = {s.stage_id: s for s in pipeline.settings}
    assert settings["map-0"].parallelism == 2
    assert (settings["map-0"].stage.file, settings["map-0"].stage.line) == (
        "expensive_map.py", 26)
    for kept in saved.pipelines:
        assert kept.measured_rate_before > 0 and kept.measured_rate_after > 0
    assert (tmp_path / "out" / "report.html").exists()


def test_run_with_a_plan_yields_the_same_output_and_reports_what_it_changed(plumber_cli,
                                                                           tmp_path):
    script = PIPELINES / "expensive_map.py"
    plan = {
        "kind": "plumber-plan", "schema_version": 1, "script": str(script),
        "pipelines": [{
            "root": {"file": "expensive_map.py", "line": 28, "kind": "prefetch"},
            "settings": [
                {"stage": {"file": "expensive_map.py", "line": 26, "kind": "map"},
                 "stage_id": "map-0", "parallelism": 2, "cache": "memory"},
                {"stage": {"file": "expensive_map.py", "line": 99, "kind": "map"},
                 "stage_id": "map-9", "parallelism": 4},
            ],
        }],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    tuned = plumber_cli("run", "--plan", tmp_path / "plan.json", script, "--",
                        "--elements", "300")
    plain = subprocess.run([sys.executable, str(script), "--elements", "300"],
                           capture_output=True, text=True)
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    assert tuned.stdout.strip() == plain.stdout.strip()
    assert ("plan applied at map at expensive_map.py:26: num_parallel_calls=1 -> "
            "num_parallel_calls=2; cache (memory) after it") in tuned.stderr
    assert "plan stage not found, left as written: map at expensive_map.py:99" in tuned.stderr


def test_cache_goes_before_the_random_op_and_preserves_the_elements(plumber_cli, tmp_path):
    script = PIPELINES / "augment_epochs.py"
    run, plan, _ = tuned(plumber_cli, tmp_path, script)
    (pipeline,) = plan.pipelines
    cached = [s for s in pipeline.settings if s.cache]
    assert [s.stage_id for s in cached] == ["map-0"], "cache right after decode, before flip"
    plan.save(tmp_path / "derived.json")
    applied = plumber_cli("run", "--plan", tmp_path / "derived.json", script)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert "cache (memory) after it" in applied.stderr
    assert applied.stdout.strip() == plain.stdout.strip()


@pytest.mark.parametrize(
    ("content", "message"),
    [("{broken", "not a readable JSON plan"),
     ('{"kind": "plumber-plan", "schema_version": 99, "script": "x"}', "newer than this")],
)
def test_run_with_a_bad_plan_is_a_one_line_error(plumber_cli, tmp_path, content, message):
    (tmp_path / "plan.json").write_text(content)
    run = plumber_cli("run", "--plan", tmp_path / "plan.json", PIPELINES / "expensive_map.py")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_latency_bound_read_gets_calls_in_flight_beyond_the_cores_and_a_pool_to_run_them(
        plumber_cli, tmp_path):
    run, plan, _ = tuned(plumber_cli, tmp_path, PIPELINES / "slow_read.py",
                         "--", "--records", "400")
    (pipeline,) = plan.pipelines
    settings = {s.stage_id: s for s in pipeline.settings}
    assert settings["map-0"].parallelism > 2 * 2  # well beyond this machine's 2 cores
    assert settings["prefetch-0"].threads >= settings["map-0"].parallelism


def test_search_refines_the_plan_with_measured_trials(plumber_cli, tmp_path):
    pytest.importorskip("optuna")
    # The slow read's plan (more reads in flight) does not hang on idle cores, so a
    # busy machine still gets one to refine; without a plan there is no search.
    run = plumber_cli("tune", "-o", tmp_path / "out" / "plan.json", "--rounds", "1",
                      "--search", "2", *REUSE, PIPELINES / "slow_read.py", "--",
                      "--records", "400")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "search: trial 2 of 2" in run.stderr, run.stderr[-3000:]
    assert "search: best plan measured" in run.stderr
    assert any(outcome in run.stderr for outcome in VERIFIED)
