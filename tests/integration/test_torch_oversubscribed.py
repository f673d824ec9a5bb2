"""GIVEN a real DataLoader with many more workers than cores doing pure CPU work, WHEN it
runs under ``plumber profile``, THEN the workers' waiting is measured as waiting for a core
(the run queue), the pool is diagnosed as oversubscribed rather than latency-bound, the
plan lowers its workers, and the thread groups say whose threads are whose."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from conftest import PIPELINES

from plumber.analyzers.diagnose import diagnose_all
from plumber.analyzers.stages import oversubscribed
from plumber.records.profile import Profile
from plumber.tuner.derive import derive_plan

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/self/schedstat").exists(), reason="needs Linux schedstat"
    ),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]

SCRIPT = PIPELINES / "torch_oversubscribed.py"


def test_sixteen_cpu_workers_on_few_cores_are_oversubscribed_and_the_plan_lowers_them(
    plumber_cli,
):
    # GIVEN at least 16 workers and 8 per usable core, each sample pure numpy CPU work
    cores = len(os.sched_getaffinity(0))
    workers = max(16, 8 * cores)
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", SCRIPT, "--",
                      "--workers", str(workers), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    profile = Profile.load(run.profile_path)
    (pipeline,) = profile.pipelines
    pool = pipeline.stage("workers").stats
    # THEN most of the workers' time off the CPU was spent runnable, waiting for a core
    assert pool.parallelism == workers
    assert pool.runqueue_time_s is not None
    assert pool.runqueue_time_s > 0.5 * (pool.wall_time_s - pool.cpu_time_s), pool
    # AND the analysis calls the pool oversubscribed and CPU-bound, not latency-bound
    (diagnosis,) = diagnose_all(profile)
    analysis = next(a for a in diagnosis.stages if a.stage_id == "workers")
    assert analysis.resource == "cpu", analysis.note
    assert oversubscribed(analysis, profile.machine.cores_usable)
    assert f"its {workers} workers waited" in diagnosis.summary
    printed = " ".join(run.stderr.split())  # the summary plumber prints, unwrapped
    assert f"is oversubscribed: its {workers} workers waited" in printed
    assert "so needs more in flight" not in printed
    assert all(int(w.value) < workers for w in diagnosis.what_ifs if w.knob == "parallelism")
    # AND the plan lowers the workers to about the usable cores
    plan = derive_plan(profile, (diagnosis,), SCRIPT)
    (planned,) = plan.pipelines
    setting = next(s for s in planned.settings if s.stage_id == "workers")
    assert setting.parallelism is not None and setting.parallelism <= 2 * cores, setting
    assert setting.reason.startswith(f"oversubscribed: {workers} workers")
    # AND the main process's thread groups say whose threads are whose
    roles = {(g.role, g.name) for g in profile.threads}
    assert ("profiler", "plumber-sampler") in roles, roles
    assert all(role == "profiler" for role, name in roles if name.startswith("plumber-"))
    assert all(role in ("main", "profiler", "inherited", "named") for role, _ in roles)
