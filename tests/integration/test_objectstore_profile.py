"""plumber on the object-storage examples: network diagnosis, faults, and refusals in plans.

Each example starts its own loopback S3 server with injected latency; plumber
runs it as a user would (``plumber profile|tune SCRIPT -- ARGS``). Checks read
the saved profile and plan, not only the exit status.
"""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.plan import Plan
from plumber.records.profile import Profile

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "examples" / "objectstore"
SMALL = ["--images", "32", "--batch-size", "8", "--latency", "20ms"]


@pytest.fixture(autouse=True)
def _needs_the_object_store():
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    pytest.importorskip("torch")


@pytest.mark.parametrize("example", ["torch_s3_images.py", "tf_s3_images.py"])
def test_a_per_object_fetch_is_named_network_latency_bound(plumber_cli, example):
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0.5", EXAMPLES / example,
                      "--", *SMALL, "--steps", "6")
    assert run.returncode == 0, run.stderr[-3000:]
    profile = Profile.load(run.profile_path)
    network = profile.network
    assert network is not None and network.requests >= 48
    assert network.latency_p50_s >= 0.02
    assert network.available_bps is not None
    (diagnosis,) = diagnose_all(profile)
    assert diagnosis.bottleneck_kind == "latency", diagnosis.summary
    assert "network requests" in diagnosis.summary
    assert "latency-bound, not bandwidth-bound" in diagnosis.summary
    assert "Network:" in run.stderr
    assert "HTTP requests to 127.0.0.1:" in run.report_path.read_text(encoding="utf-8")


def test_the_server_going_away_still_leaves_a_profile_naming_the_failing_stage(plumber_cli):
    run = plumber_cli("profile", "-o", "out", EXAMPLES / "torch_s3_images.py",
                      "--", *SMALL, "--steps", "20", "--server-stop-after", "12")
    assert run.returncode != 0
    profile = Profile.load(run.profile_path)
    fetch = profile.pipelines[0].stage("fetch")
    assert fetch.error is not None and "Could not connect to the endpoint URL" in fetch.error
    assert profile.network is not None and profile.network.failures >= 1
    assert "Connection" in (profile.network.first_failure or "")


def test_a_missing_object_is_named_on_the_fetch_stage(plumber_cli):
    run = plumber_cli("profile", "-o", "out", EXAMPLES / "torch_s3_images.py",
                      "--", *SMALL, "--steps", "8", "--missing-keys")
    assert run.returncode != 0
    fetch = Profile.load(run.profile_path).pipelines[0].stage("fetch")
    assert fetch.error is not None and "NoSuchKey" in fetch.error
    assert "deleted-" in fetch.error


def test_a_tuned_plan_keeps_fewer_requests_in_flight_than_when_the_server_refused(plumber_cli):
    # Six workers against a server that answers 503 SlowDown beyond 4 requests at once.
    run = plumber_cli("tune", "-o", "out/plan.json", "--rounds", "1", "--reuse-process",
                      EXAMPLES / "torch_s3_images.py", "--", *SMALL, "--steps", "8",
                      "--num-workers", "6", "--max-in-flight", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    # The refusal shows in the run's requests or, when the run's timing kept it under the
    # limit, in the probe's replays after it.
    network = Profile.load(run.out_dir / "profile.json").network
    assert network is not None and network.in_flight_at_first_refusal is not None
    cap = network.in_flight_at_first_refusal - 1
    plan = Plan.load(run.out_dir / "plan.json")
    workers = [s for p in (*plan.pipelines, *plan.rejected) for s in p.settings
               if s.stage_id == "workers" and s.parallelism is not None]
    reasons = [s.reason for s in workers]
    assert workers and all(s.parallelism <= cap for s in workers), reasons
    # The cap is the reason, unless waiting for a core (on a busy machine) already asked
    # for fewer workers than the cap allows.
    assert any("refused" in s.reason or (s.parallelism < cap and "oversubscribed" in s.reason)
               for s in workers), reasons


def test_tf_objects_read_every_epoch_are_fetched_concurrently_then_kept(plumber_cli):
    # 32 objects, 3 epochs: the fetch sits in a map with a random flip after a shuffle of
    # the keys, so no stage cache may go after it; the objects themselves can be kept.
    run = plumber_cli("tune", "-o", "out/plan.json", "--rounds", "1", "--reuse-process",
                      EXAMPLES / "tf_s3_images.py", "--", *SMALL, "--steps", "12")
    assert run.returncode == 0, run.stderr[-3000:]
    network = Profile.load(run.out_dir / "profile.json").network
    assert network is not None and network.object_reads >= 3 * 32
    assert network.object_reads / network.objects_read >= 2.9
    plan = Plan.load(run.out_dir / "plan.json")
    assert plan.pipelines, plan.rejected
    fetch = next(s for s in plan.pipelines[0].settings if s.object_cache)
    assert fetch.object_cache == "memory" and fetch.stage.kind == "map"
    assert fetch.parallelism is not None and fetch.parallelism > 2
    assert "read each of its" in fetch.reason
    applied = plumber_cli("run", "--plan", "out/plan.json", EXAMPLES / "tf_s3_images.py",
                          "--", *SMALL, "--steps", "12")
    assert applied.returncode == 0, applied.stderr[-3000:]
    kept = re.search(r"objects read from S3 kept \(memory, .* (\d+) hits, (\d+) misses\)",
                     applied.stderr)
    assert kept is not None, applied.stderr[-3000:]
    hits, misses = int(kept.group(1)), int(kept.group(2))
    # Epoch 1 fetches each object once; epochs 2 and 3 read them from memory.
    assert misses >= 32 and hits >= 2 * 32
