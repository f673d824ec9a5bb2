"""Merging the request traces of several processes into one NetworkRequests."""

from __future__ import annotations

import dataclasses
import math

from plumber.measure.netprobe import NetworkProbe
from plumber.measure.netsummary import largest_get, merge_traces, summarize_network, with_probe
from plumber.measure.nettrace import FORMAT


def trace(*requests: tuple, pid: int = 1, overflow: dict | None = None, replay=None) -> dict:
    """A snapshot from rows (start, latency, duration, status, bytes, error[, resource])."""
    rows = [
        [*request[:4], "s3:9000", "GET", *request[4:6],
         request[6] if len(request) > 6 else None]
        for request in requests
    ]
    return {"format": FORMAT, "pid": pid, "requests": rows, "overflow": overflow, "replay": replay}


def test_two_processes_overlapping_in_time_merge_on_one_timeline():
    # GIVEN a main process busy over [0, 1] and [2, 3] and a worker over [0.5, 2.5]
    main = trace((100.0, 0.2, 1.0, 200, 10, None), (102.0, 0.4, 1.0, 200, 20, None))
    worker = trace((100.5, 0.3, 2.0, 200, 30, None), pid=2)
    network = merge_traces([main, worker])
    assert (network.requests, network.bytes_received) == (3, 60)
    assert math.isclose(network.busy_s, 3.0)
    assert network.in_flight_max == 2
    assert math.isclose(network.latency_mean_s, 0.3)
    assert math.isclose(network.latency_p50_s, 0.3)
    assert math.isclose(network.latency_p90_s, 0.38)
    assert network.hosts == ("s3:9000",)


def test_the_first_refusal_counts_what_every_process_had_in_flight():
    # GIVEN a worker refused at 101.1 while two other requests were outstanding
    main = trace((100.0, 0.1, 2.0, 200, 10, None), (101.0, 0.1, 0.1, 503, 0, None))
    worker = trace((100.5, 0.5, 1.0, 200, 10, None), (103.0, 0.1, 0.1, 429, 0, None), pid=2)
    network = merge_traces([worker, main])
    assert network.refused == 2
    assert network.statuses == {"200": 2, "429": 1, "503": 1}
    assert network.in_flight_at_first_refusal == 3
    assert math.isclose(network.latency_mean_s, 0.3)  # refusals are not successes


def test_failures_name_the_earliest_across_processes():
    late = trace((105.0, None, 1.0, None, 0, "ReadTimeoutError: Read timed out."))
    early = trace((101.0, None, 0.1, None, 0, "NewConnectionError: Connection refused"), pid=2)
    network = merge_traces([late, early])
    assert (network.requests, network.failures) == (2, 2)
    assert network.first_failure == "NewConnectionError: Connection refused"
    assert math.isnan(network.latency_mean_s) and math.isnan(network.latency_p50_s)
    assert network.in_flight_at_first_refusal is None


def test_requests_beyond_the_record_limit_add_to_the_totals():
    overflow = {"requests": 4, "bytes": 400, "latency_sum_s": 2.0, "latency_count": 4,
                "statuses": {"200": 4}, "failures": 0, "first_failure": None}
    network = merge_traces([trace((100.0, 1.0, 1.0, 200, 100, None), overflow=overflow)])
    assert (network.requests, network.bytes_received) == (5, 500)
    assert network.statuses == {"200": 5}
    assert math.isclose(network.latency_mean_s, 0.6)


def test_no_request_means_no_network_record_and_other_json_is_ignored():
    assert merge_traces([]) is None
    assert merge_traces([trace()]) is None
    malformed = {"format": FORMAT, "requests": [["bad"]]}
    assert merge_traces([{"workers": 2}, trace(), malformed]) is None
    assert summarize_network([trace()]) is None


def test_the_largest_get_of_all_processes_is_the_one_replayed():
    small, large = {"url": "/a", "bytes": 10}, {"url": "/b", "bytes": 1000}
    assert largest_get([trace(replay=small), trace(replay=large), trace()]) == large
    assert largest_get([trace()]) is None


def test_the_probe_fills_the_record_and_can_be_turned_off():
    snapshot = trace((100.0, 0.1, 0.1, 200, 10, None))
    network = with_probe(merge_traces([snapshot]), NetworkProbe(5e6, 0.01, "replayed a GET"))
    assert (network.available_bps, network.probe_latency_s) == (5e6, 0.01)
    off = summarize_network([snapshot], probe_budget_s=0)
    assert off.available_bps is None and off.probe_basis == "no probe: the probe was turned off"
    unprobed = summarize_network([snapshot])
    assert unprobed.probe_basis == "no probe: the run made no successful GET to replay"


def test_a_refusal_during_the_probe_limits_requests_in_flight_like_one_during_the_run():
    from plumber.measure.netprobe import NetworkProbe
    from plumber.measure.netsummary import with_probe
    from plumber.records.profile import NetworkRequests

    quiet = NetworkRequests(10, 1000, 1.0, 0.02, 0.02, 0.03, 2)
    probed = with_probe(quiet, NetworkProbe(1e6, 0.02, "replayed", refused_in_flight=4))
    assert probed.in_flight_at_first_refusal == 4
    earlier = dataclasses.replace(quiet, in_flight_at_first_refusal=3)
    kept = with_probe(earlier, NetworkProbe(1e6, 0.02, "replayed", refused_in_flight=4))
    assert kept.in_flight_at_first_refusal == 3


def test_reads_per_object_count_successful_gets_of_the_same_resource_across_processes():
    # GIVEN two objects read in epoch 1 by the main process and again in epoch 2 by a
    # worker, one failed read, and one refused read
    main = trace((100.0, 0.05, 0.05, 200, 1000, None, "a"),
                 (100.1, 0.05, 0.05, 200, 3000, None, "b"),
                 (100.2, None, 0.1, None, 0, "ConnectionError: reset", "c"),
                 (100.3, 0.05, 0.05, 503, 0, None, "c"))
    worker = trace((101.0, 0.05, 0.05, 200, 1000, None, "a"),
                   (101.1, 0.05, 0.05, 200, 3000, None, "b"), pid=2)
    network = merge_traces([main, worker])
    # THEN only the successful reads count: two objects, twice each, 4000 bytes once
    assert (network.object_reads, network.objects_read, network.object_bytes) == (4, 2, 4000)


def test_requests_without_a_resource_are_not_counted_as_object_reads():
    network = merge_traces([trace((100.0, 0.05, 0.05, 200, 10, None, None))])
    assert (network.requests, network.object_reads, network.objects_read) == (1, 0, 0)


def test_reads_per_object_are_unknown_when_requests_went_unrecorded():
    overflow = {"requests": 4, "bytes": 400, "latency_sum_s": 2.0, "latency_count": 4,
                "statuses": {"200": 4}, "failures": 0, "first_failure": None}
    network = merge_traces([trace((100.0, 0.05, 0.05, 200, 100, None, "a"),
                                  (100.1, 0.05, 0.05, 200, 100, None, "a"), overflow=overflow)])
    assert network.requests == 6
    assert (network.object_reads, network.objects_read, network.object_bytes) == (0, 0, 0)
