"""The request tracer, against a real HTTP server on loopback (urllib3 and requests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
import requests
import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from plumber.measure.netsummary import merge_traces
from plumber.measure.nettrace import FIELDS, RequestTracer
from tests.unit.loopback_http import LoopbackServer, closed_port


def rows(tracer: RequestTracer) -> list[dict]:
    return [dict(zip(FIELDS, row, strict=True)) for row in tracer.snapshot()["requests"]]


def test_urllib3_requests_are_recorded_with_latency_status_host_and_declared_size():
    with LoopbackServer(delay_s=0.05) as server, RequestTracer() as tracer:
        http = urllib3.PoolManager()
        for _ in range(3):
            assert len(http.request("GET", server.url("/bytes/1000")).data) == 1000
    network = merge_traces([tracer.snapshot()])
    assert network.requests == 3
    assert network.bytes_received == 3000
    assert network.statuses == {"200": 3}
    assert network.hosts == (f"127.0.0.1:{server.port}",)
    assert network.latency_p50_s >= 0.05 and network.latency_mean_s >= 0.05
    assert network.busy_s >= 3 * 0.05
    assert network.in_flight_max == 1
    assert (network.refused, network.failures, network.first_failure) == (0, 0, None)


def test_the_same_object_read_again_has_the_same_resource_and_a_range_or_version_does_not():
    # GIVEN reads of one path twice (with different signatures), a range of it, a version
    # of it, and another path
    with LoopbackServer() as server, RequestTracer() as tracer:
        http = urllib3.PoolManager()
        for path, headers in (("/bytes/100?X-Amz-Signature=1", {}),
                              ("/bytes/100?X-Amz-Signature=2", {}),
                              ("/bytes/100", {"Range": "bytes=0-9"}),
                              ("/bytes/100?versionId=7", {}),
                              ("/bytes/200", {})):
            http.request("GET", server.url(path), headers=headers)
    resources = [row["resource"] for row in rows(tracer)]
    # THEN the two plain reads share a digest; everything else differs
    assert resources[0] == resources[1]
    assert len(set(resources)) == 4
    network = merge_traces([tracer.snapshot()])
    assert (network.object_reads, network.objects_read) == (5, 4)


def test_requests_are_traced_until_their_streamed_body_has_been_read():
    # GIVEN a server that pauses 150 ms between the headers and the body
    with LoopbackServer() as server, RequestTracer() as tracer:
        response = requests.get(server.url("/bytes/5000?body_delay_ms=150"), timeout=10)
        assert len(response.content) == 5000
    (row,) = rows(tracer)
    assert (row["method"], row["status"], row["bytes"]) == ("GET", 200, 5000)
    # THEN the request was outstanding until the body came, after its headers
    assert row["duration_s"] >= 0.15
    assert row["duration_s"] >= row["latency_s"]


def test_in_flight_max_counts_the_requests_outstanding_together():
    # GIVEN a server that answers only once 8 requests are waiting together
    with LoopbackServer(hold=8) as server, RequestTracer() as tracer:
        http = urllib3.PoolManager(maxsize=8)
        threads = [
            threading.Thread(target=http.request, args=("GET", server.url("/bytes/10")))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    network = merge_traces([tracer.snapshot()])
    assert network.requests == 8
    assert network.in_flight_max == 8


def test_a_refusal_is_counted_with_the_requests_in_flight_when_it_came():
    with LoopbackServer() as server, RequestTracer() as tracer:
        http = urllib3.PoolManager()
        slow = threading.Thread(
            target=http.request, args=("GET", server.url("/bytes/100?delay_ms=400"))
        )
        slow.start()
        assert server.arrived.wait(5)
        assert http.request("GET", server.url("/refuse")).status == 503
        slow.join()
    network = merge_traces([tracer.snapshot()])
    assert network.statuses == {"200": 1, "503": 1}
    assert network.refused == 1
    assert network.in_flight_at_first_refusal == 2  # the slow one and the refused one
    assert network.latency_p50_s >= 0.4  # latency is over successful requests only


def test_every_attempt_of_a_urllib3_retry_is_counted():
    with LoopbackServer() as server, RequestTracer() as tracer:
        retries = Retry(total=2, status_forcelist=[503], raise_on_status=False)
        response = urllib3.PoolManager().request("GET", server.url("/refuse"), retries=retries)
        assert response.status == 503
    assert server.requests == 3
    network = merge_traces([tracer.snapshot()])
    assert (network.requests, network.refused, network.statuses) == (3, 3, {"503": 3})


def test_a_refused_connection_is_recorded_and_the_exception_propagates_unchanged():
    url = f"http://127.0.0.1:{closed_port()}/bytes/10?X-Amz-Signature=SECRET"
    with RequestTracer() as tracer:
        with pytest.raises(urllib3.exceptions.NewConnectionError):
            urllib3.PoolManager().request("GET", url, retries=False)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, timeout=5)
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            urllib3.PoolManager().request("GET", url, retries=Retry(total=1))
    network = merge_traces([tracer.snapshot()])
    assert network.requests == network.failures == 4  # the retry is an attempt of its own
    assert network.statuses == {}
    assert network.first_failure.startswith("NewConnectionError: ")
    assert "Connection refused" in network.first_failure
    assert all("SECRET" not in row["error"] for row in rows(tracer))


def test_nothing_stays_patched_after_the_tracers_exit_even_on_an_exception():
    originals = HTTPConnectionPool.urlopen, HTTPResponse.release_conn
    with pytest.raises(RuntimeError):
        with RequestTracer():
            assert HTTPConnectionPool.urlopen is not originals[0]
            raise RuntimeError("the script failed")
    assert (HTTPConnectionPool.urlopen, HTTPResponse.release_conn) == originals
    with LoopbackServer() as server, RequestTracer() as outer:
        with RequestTracer() as inner:
            urllib3.PoolManager().request("GET", server.url("/bytes/1"))
        assert HTTPConnectionPool.urlopen is not originals[0]  # the outer one still traces
        urllib3.PoolManager().request("GET", server.url("/bytes/1"))
    assert (HTTPConnectionPool.urlopen, HTTPResponse.release_conn) == originals
    assert (len(inner.snapshot()["requests"]), len(outer.snapshot()["requests"])) == (1, 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_records_only_into_its_own_tracer():
    # GIVEN a tracer active when a worker process is forked (as DataLoader workers are)
    with LoopbackServer() as server, RequestTracer() as parent:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                urllib3.PoolManager().request("GET", server.url("/bytes/1"))
                with RequestTracer() as own:
                    urllib3.PoolManager().request("GET", server.url("/bytes/1"))
                counts = (len(parent.snapshot()["requests"]), len(own.snapshot()["requests"]))
                os.write(write, json.dumps(counts).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        counts = json.loads(os.read(read, 100))
        os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    # THEN the parent's tracer saw nothing of the worker; the worker's own saw its request
    assert counts == [0, 1]
    assert parent.snapshot()["requests"] == []


def test_memory_stays_bounded_and_requests_beyond_the_limit_still_count():
    with LoopbackServer() as server, RequestTracer(max_records=2) as tracer:
        http = urllib3.PoolManager()
        for _ in range(5):
            http.request("GET", server.url("/bytes/10"))
    snapshot = tracer.snapshot()
    assert len(snapshot["requests"]) == 2
    assert snapshot["overflow"]["requests"] == 3
    network = merge_traces([snapshot])
    assert (network.requests, network.bytes_received, network.statuses) == (5, 50, {"200": 5})


def test_signed_headers_stay_in_the_snapshot_replay_and_out_of_the_record():
    signed = {"Authorization": "AWS4-HMAC-SHA256 Signature=SECRET"}
    with LoopbackServer() as server, RequestTracer() as tracer:
        http = urllib3.PoolManager()
        http.request("GET", server.url("/bytes/10"), headers=signed)
        http.request("GET", server.url("/bytes/300"), headers=signed)
        http.request("HEAD", server.url("/bytes/5000"))
    snapshot = tracer.snapshot()
    json.dumps(snapshot)  # JSON-serialisable, for worker stats files
    replay = snapshot["replay"]
    assert (replay["url"], replay["bytes"]) == ("/bytes/300", 300)
    assert replay["headers"]["Authorization"].endswith("SECRET")
    assert tracer.snapshot(include_replay=False)["replay"] is None
    network = merge_traces([snapshot])
    assert network.bytes_received == 310  # a HEAD declares a length but carries no body
    assert "SECRET" not in json.dumps(network.__dict__)


def test_importing_the_network_modules_does_not_load_urllib3():
    code = (
        "import sys, plumber.measure.nettrace, plumber.measure.netsummary, "
        "plumber.measure.netprobe; "
        "print([m for m in sys.modules if m.startswith('urllib3')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_without_urllib3_the_tracer_records_nothing_and_does_not_fail():
    # A torch-only install has no urllib3 (TensorFlow brings it, torch does not).
    code = ("import sys; sys.modules['urllib3'] = None\n"
            "from plumber.measure.nettrace import RequestTracer\n"
            "with RequestTracer() as tracer: pass\n"
            "print(tracer.snapshot()['requests'])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
