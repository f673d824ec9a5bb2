"""plumber on a machine with a CUDA device: NVML sampling, pinned memory, a GPU consumer.

Skipped where torch sees no CUDA device (CI and the development machines
have none); run where one is lent (see BENCHMARKS.md for when it last ran).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from plumber.analyzers.diagnose import diagnose  # noqa: E402
from plumber.records.profile import Profile  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SCRIPT = Path(__file__).with_name("pinned_loader.py")


def profile(tmp_path: Path, *script_args: str) -> Profile:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PLUMBER_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "plumber", "profile", "-o", str(tmp_path / "out"), str(SCRIPT),
         "--", *script_args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    print(run.stdout)  # the summary plumber printed, shown with ``pytest -s``
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "report.html").is_file()
    return Profile.load(tmp_path / "out" / "profile.json")


def test_a_gpu_bound_step_is_sampled_through_nvml_and_named_the_bottleneck(tmp_path):
    # GIVEN large matrix products on the GPU each step, fed by a cheap pipeline
    result = profile(tmp_path, "--gpu-work", "6", "--samples", "1024")
    # THEN the GPU was found and sampled busy, and the step is the limit
    assert result.machine.gpu_status == "present"
    assert result.machine.gpus
    assert max(result.resources.gpu_util_percent, default=0) > 50
    assert max(result.resources.gpu_memory_used_bytes, default=0) > 256 * 2**20
    (pipeline,) = result.pipelines
    diagnosis = diagnose(result, pipeline)
    assert diagnosis.bottleneck_kind == "consumer", diagnosis.summary


def test_pinned_batches_are_timed_and_a_slow_pipeline_is_named_with_a_gpu(tmp_path):
    # GIVEN workers that spend CPU on each sample, and a light GPU step
    result = profile(tmp_path, "--cpu-work", "20", "--workers", "1", "--samples", "512")
    (pipeline,) = result.pipelines
    # THEN pin_memory ran as its own timed stage, at the root
    pin = pipeline.stage("pin_memory")
    assert pipeline.root == "pin_memory"
    assert pin.stats is not None and pin.stats.wall_time_s > 0
    assert pin.stats.elements == pipeline.consumer.steps, "one pinning per batch"
    # AND the input pipeline, not the GPU step, is named
    diagnosis = diagnose(result, pipeline)
    assert diagnosis.input_bound, diagnosis.summary
    assert diagnosis.bottleneck_kind != "consumer"
