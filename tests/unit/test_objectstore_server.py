"""The loopback S3 server of examples/objectstore: latency, bandwidth, throttling, going away.

Real HTTP through boto3 against the in-process server. Times are checked as
lower bounds only (what was injected must be felt); speed is never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError  # noqa: E402

from examples.objectstore.server import (  # noqa: E402
    S3Server,
    S3ServerProcess,
    parse_bandwidth,
    parse_duration,
)

REPO = Path(__file__).resolve().parents[2]
NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}


@pytest.fixture(autouse=True)
def _test_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def client(endpoint_url: str, **config: Any) -> Any:
    config.setdefault("connect_timeout", 5)
    config.setdefault("read_timeout", 10)
    return boto3.client("s3", endpoint_url=endpoint_url, config=Config(**config))


def bucket_with(s3: Any, **objects: bytes) -> str:
    """A fresh bucket holding ``objects`` (moto's state is shared by every server here)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    return name


def timed_get(s3: Any, bucket: str, key: str) -> float:
    start = time.perf_counter()
    s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return time.perf_counter() - start


def test_every_request_waits_at_least_the_injected_latency():
    with S3Server(latency_s=0.05, jitter_s=0.01) as server:
        s3 = client(server.endpoint_url)
        bucket = bucket_with(s3, small=b"x" * 20_000)
        times = [timed_get(s3, bucket, "small") for _ in range(5)]
    assert min(times) >= 0.05


def test_bandwidth_limit_holds_over_a_multi_megabyte_transfer():
    with S3Server(bandwidth_bps=8e6) as server:  # limits responses; the upload is not slowed
        s3 = client(server.endpoint_url)
        bucket = bucket_with(s3, big=bytes(4_000_000))
        elapsed = timed_get(s3, bucket, "big")
    assert elapsed >= 0.5 * 0.95  # 4 MB at 8 MB/s


def test_concurrent_responses_share_one_bandwidth_limit():
    with S3Server(bandwidth_bps=8e6) as server:
        s3 = client(server.endpoint_url, max_pool_connections=4)
        bucket = bucket_with(s3, a=bytes(2_000_000), b=bytes(2_000_000))
        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                          ["a", "b"]))
        elapsed = time.perf_counter() - start
    assert elapsed >= 0.5 * 0.95  # 4 MB in total through one 8 MB/s link, not 2 x 8 MB/s


def test_requests_beyond_max_in_flight_get_503_slowdown():
    with S3Server(latency_s=0.3, max_in_flight=1) as server:
        s3 = client(server.endpoint_url, max_pool_connections=4, retries=NO_RETRIES)
        bucket = bucket_with(client(server.endpoint_url), k=b"data")
        # Setting up can be throttled too (a keep-alive request sent before the server
        # counted the one before it out), and retried: count only the GETs'.
        throttled_before = server.middleware.throttled

        def get(_: int) -> ClientError | None:
            try:
                s3.get_object(Bucket=bucket, Key="k")["Body"].read()
            except ClientError as err:
                return err
            return None

        with ThreadPoolExecutor(4) as pool:
            errors = [err for err in pool.map(get, range(4)) if err is not None]
    assert errors, "no request was throttled"
    for err in errors:
        assert err.response["Error"]["Code"] == "SlowDown"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert server.middleware.throttled - throttled_before == len(errors)


def test_boto3_retries_slowdown_until_the_request_is_served():
    with S3Server(latency_s=0.05, max_in_flight=2) as server:
        s3 = client(server.endpoint_url, max_pool_connections=6,
                    retries={"mode": "standard", "max_attempts": 10})
        bucket = bucket_with(s3, k=b"data")
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda _: s3.get_object(Bucket=bucket, Key="k"), range(6)))
    assert [r["Body"].read() for r in responses] == [b"data"] * 6
    assert sum(r["ResponseMetadata"]["RetryAttempts"] for r in responses) >= 1
    assert server.middleware.throttled >= 1


def test_serves_64_requests_in_flight_at_once():
    with S3Server(latency_s=0.5) as server:
        s3 = client(server.endpoint_url, max_pool_connections=64)
        bucket = bucket_with(s3, k=b"data")
        with ThreadPoolExecutor(64) as pool:
            bodies = list(pool.map(lambda _: s3.get_object(Bucket=bucket, Key="k")["Body"].read(),
                                   range(64)))
    assert bodies == [b"data"] * 64
    assert server.middleware.peak_in_flight >= 32


def test_after_stop_requests_are_refused_not_left_waiting():
    server = S3Server().start()
    s3 = client(server.endpoint_url, retries=NO_RETRIES)
    bucket = bucket_with(s3, k=b"data")
    server.stop()
    start = time.perf_counter()
    with pytest.raises(EndpointConnectionError):
        s3.get_object(Bucket=bucket, Key="k")
    assert time.perf_counter() - start < 5  # refused, not a 5 s connect timeout


def test_stop_cuts_a_request_in_flight():
    with S3Server(latency_s=0.5) as server:
        s3 = client(server.endpoint_url, retries=NO_RETRIES)
        bucket = bucket_with(s3, k=b"data")
        threading.Timer(0.2, server.stop).start()
        with pytest.raises(BotoCoreError):
            s3.get_object(Bucket=bucket, Key="k")["Body"].read()
        assert server.stopped.wait(5)


def test_stop_after_gets_serves_that_many_reads_then_goes_away():
    with S3Server(stop_after_gets=3) as server:
        s3 = client(server.endpoint_url, retries=NO_RETRIES)
        bucket = bucket_with(s3, k=b"data")  # PUTs do not count
        for _ in range(3):
            s3.get_object(Bucket=bucket, Key="k")["Body"].read()
        assert server.stopped.wait(5)
        with pytest.raises(BotoCoreError):
            s3.get_object(Bucket=bucket, Key="k")


def test_server_process_serves_until_stopped():
    with S3ServerProcess(latency_s=0.01) as server:
        s3 = client(server.endpoint_url, retries=NO_RETRIES)
        bucket = bucket_with(s3, k=b"data")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    with pytest.raises(EndpointConnectionError):
        s3.get_object(Bucket=bucket, Key="k")


@pytest.mark.parametrize(("text", "seconds"), [("50ms", 0.05), ("0.5s", 0.5), ("2", 2.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "rate"), [("50MB/s", 50e6), ("500kB/s", 5e5), ("1e6B/s", 1e6)])
def test_parse_bandwidth(text, rate):
    assert parse_bandwidth(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "50 Mbit/s"])
def test_parse_bandwidth_rejects_other_units(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bandwidth(text)


def test_server_process_does_not_outlive_a_killed_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, 'examples/objectstore')\n"
         "from server import S3ServerProcess\n"
         "print(S3ServerProcess().start().endpoint_url, flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    endpoint_url = parent.stdout.readline().strip()
    s3 = client(endpoint_url, retries=NO_RETRIES)
    s3.list_buckets()  # up while the parent lives
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            s3.list_buckets()
        except BotoCoreError:  # refused, or reset while it goes
            return
        time.sleep(0.1)
    pytest.fail("the server process outlived its parent")
