"""The object-storage examples, run as a user runs them: each starts its own S3 server.

Small datasets and step counts keep each run to a few seconds. The fault runs
check that a failure ends the script with a non-zero status and a message that
names it, instead of a hang (the subprocess timeout catches one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "objectstore"
SMALL = ["--images", "32", "--batch-size", "8", "--latency", "5ms"]

pytestmark = pytest.mark.slow


@pytest.fixture(params=["tf_s3_images.py", "torch_s3_images.py"])
def example(request) -> str:
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    if request.param.startswith("torch"):
        pytest.importorskip("torch")
    return request.param


def run_example(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *SMALL, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("source", ["objects", "shards"])
def test_example_trains_from_its_own_server(example, source):
    run = run_example(example, "--source", source, "--steps", "3")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "S3 endpoint http://127.0.0.1:" in run.stdout
    assert "step 3/3: loss" in run.stdout
    assert "done: 3 steps, 24 images" in run.stdout


def test_example_fails_clearly_when_the_server_goes_away_mid_run(example):
    # 1 GET reads the manifest, then 24 samples: the server goes away after three batches
    # were fetched (DataLoader workers fetch ahead, so fewer may have reached training).
    run = run_example(example, "--server-stop-after", "25", "--steps", "20")
    assert run.returncode != 0
    assert "step 1/20" in run.stdout and "done:" not in run.stdout
    # GETs already in flight when the 25th arrives are still served.
    went_away = re.search(r"S3 server went away after (\d+) GETs", run.stderr)
    assert went_away is not None and int(went_away.group(1)) >= 25, run.stderr[-2000:]
    assert "could not read s3://plumber-images/images/" in run.stderr
    assert "Could not connect to the endpoint URL" in run.stderr


def test_example_names_the_missing_object(example):
    # 1 key in 16 is missing; 8 steps of 8 cover the 32 samples twice.
    run = run_example(example, "--missing-keys", "--steps", "8")
    assert run.returncode != 0
    assert "done:" not in run.stdout
    assert "does not exist (NoSuchKey)" in run.stderr
    assert "s3://plumber-images/images/deleted-000" in run.stderr
