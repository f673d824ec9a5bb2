"""The network probe: replaying the run's largest GET, on loopback servers (and moto's S3)."""

from __future__ import annotations

import json

import pytest
import urllib3

from plumber.measure.netprobe import probe_network
from plumber.measure.netsummary import largest_get, summarize_network
from plumber.measure.nettrace import RequestTracer
from tests.unit.loopback_http import LoopbackServer, closed_port


def replay_of(server: LoopbackServer, path: str, headers: dict | None = None) -> dict:
    """What a tracer keeps of a GET the run made."""
    with RequestTracer() as tracer:
        urllib3.PoolManager().request("GET", server.url(path), headers=headers)
    return tracer.snapshot()["replay"]


def test_the_probe_measures_one_requests_latency_and_the_bandwidth_of_several():
    with LoopbackServer(delay_s=0.03) as server:
        probe = probe_network(replay_of(server, "/bytes/200000"), budget_s=1.5)
    assert probe.latency_s >= 0.03
    assert probe.available_bps > 0
    # Served at once, several in flight take about as long each as one alone.
    assert 0.03 <= probe.loaded_latency_s < 3 * probe.latency_s
    assert probe.basis.startswith(f"replayed a 200.0 kB GET from 127.0.0.1:{server.port} ")
    assert "at once at best (tried 1" in probe.basis


def test_requests_served_in_turn_take_longer_with_more_in_flight():
    # GIVEN a server that serves one request at a time, 20 ms each
    with LoopbackServer(delay_s=0.02, one_at_a_time=True) as server:
        probe = probe_network(replay_of(server, "/bytes/100"), budget_s=1.5)
    # One alone takes its 20 ms; with k in flight each waits for the others: about k x 20 ms.
    assert 0.02 <= probe.latency_s < 0.04
    assert probe.loaded_in_flight in (4, 16)
    assert probe.loaded_latency_s >= 0.8 * probe.loaded_in_flight * 0.02


def test_the_replay_sends_the_original_headers():
    with LoopbackServer(require_header=("X-Signed", "yes")) as server:
        replay = replay_of(server, "/bytes/100", headers={"X-Signed": "yes"})
        assert probe_network(replay, budget_s=0.5).available_bps > 0
        replay["headers"] = {}
        rejected = probe_network(replay, budget_s=0.5)
    assert rejected.available_bps is None
    assert "got HTTP 403 (it was not accepted)" in rejected.basis


def test_concurrency_stops_rising_where_the_server_refuses():
    # GIVEN a server that answers 503 SlowDown beyond 2 requests in flight
    with LoopbackServer(delay_s=0.05, max_in_flight=2) as server:
        probe = probe_network(replay_of(server, "/bytes/1000"), budget_s=1.5)
    assert probe.available_bps > 0
    # Refused at 4, the probe halves the gap to 1: 2 are taken, 3 refused.
    assert "(tried 1, 4, 2, 3)" in probe.basis
    assert probe.refused_in_flight == 3
    assert ("at 3 in flight the server refused a request (HTTP 503), at 2 it did not, so no "
            "more were kept in flight") in probe.basis


def test_a_refusal_far_above_the_last_level_taken_is_narrowed_down_to_the_limit():
    # GIVEN a server taking 4 at once, where the levels go 1, 4, 16 (a plan kept 15 in flight
    # when 16 was the refusal recorded)
    with LoopbackServer(delay_s=0.05, max_in_flight=4) as server:
        probe = probe_network(replay_of(server, "/bytes/1000"), budget_s=1.5)
    assert "(tried 1, 4, 16, 10, 7, 5)" in probe.basis
    assert probe.refused_in_flight == 5
    assert probe.loaded_in_flight == 4


def test_without_a_get_to_replay_the_basis_says_so():
    probe = probe_network(None)
    assert (probe.available_bps, probe.latency_s) == (None, None)
    assert probe.basis == "no probe: the run made no successful GET to replay"


def test_a_server_gone_after_the_run_is_reported_not_raised():
    with LoopbackServer() as server:
        replay = replay_of(server, "/bytes/100")
    replay["port"] = closed_port()
    probe = probe_network(replay, budget_s=0.5)
    assert probe.available_bps is None
    assert probe.basis.startswith("no probe: replaying a GET from 127.0.0.1:")
    assert "NewConnectionError" in probe.basis


def test_a_spent_budget_still_returns_a_probe():
    with LoopbackServer() as server:
        probe = probe_network(replay_of(server, "/bytes/100"), budget_s=0)
    assert probe.basis


@pytest.fixture(scope="module")
def moto_s3():
    """moto's S3 server on an ephemeral loopback port, and a boto3 client for it."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    yield client
    server.stop()


@pytest.mark.slow
def test_boto3_reads_from_a_real_s3_server_are_traced_and_probed(moto_s3):
    moto_s3.create_bucket(Bucket="data")
    for i in range(20):
        moto_s3.put_object(Bucket="data", Key=f"img/{i}.jpg", Body=b"i" * 20_000)
    moto_s3.put_object(Bucket="data", Key="shard-0.tar", Body=b"s" * 1_000_000)
    with RequestTracer() as tracer:
        for i in range(20):
            body = moto_s3.get_object(Bucket="data", Key=f"img/{i}.jpg")["Body"]
            assert len(body.read()) == 20_000
        moto_s3.get_object(Bucket="data", Key="shard-0.tar")["Body"].read()
    snapshot = tracer.snapshot()
    assert snapshot["replay"]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256")
    network = summarize_network([snapshot], probe_budget_s=2.0)
    print(f"\nmoto: {network.requests} GETs, latency p50 {network.latency_p50_s * 1e3:.1f} ms, "
          f"probe latency {network.probe_latency_s * 1e3:.1f} ms, "
          f"available {network.available_bps / 1e6:.1f} MB/s ({network.probe_basis})")
    assert network.requests == 21
    assert network.bytes_received == 20 * 20_000 + 1_000_000
    assert network.statuses == {"200": 21}
    assert network.latency_p50_s > 0 and network.probe_latency_s > 0
    assert network.available_bps > 0
    assert network.probe_basis.startswith("replayed a 1.0 MB GET from 127.0.0.1:")
    signature = largest_get([snapshot])["headers"]["Authorization"].rsplit("=", 1)[-1]
    assert signature not in json.dumps(network.__dict__)
