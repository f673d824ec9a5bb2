"""Pipelines that read over the network: latency versus bandwidth, and the
server's refusals as a limit on requests in flight."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from plumber.analyzers.diagnose import diagnose
from plumber.analyzers.network import describe
from plumber.record import NetworkRequests
from plumber.tuner.derive import derive_plan
from tests.unit.synthetic_profiles import loader_profile


def fetching(available_bps: float | None, refused_at: int | None = None, **kwargs):
    """2 workers; each sample waits 20 ms on a GET of 12 kB (800 samples, 100 batches)."""
    profile = loader_profile((0.020, 0.0005), (("Resize", 0.001, 0.001, False),),
                             num_workers=2, wait_s=8.4, step_s=1.0, **kwargs)
    network = NetworkRequests(
        requests=800, bytes_received=800 * 12_000, busy_s=9.0,
        latency_mean_s=0.02, latency_p50_s=0.02, latency_p90_s=0.025, in_flight_max=2,
        hosts=("127.0.0.1:9000",), statuses={"200": 800, **({"503": 3} if refused_at else {})},
        refused=3 if refused_at else 0, in_flight_at_first_refusal=refused_at,
        available_bps=available_bps, probe_latency_s=0.02, probe_basis="replayed a GET",
    )
    return dataclasses.replace(profile, network=network)


def test_a_fetch_waiting_on_requests_is_named_latency_bound_not_bandwidth_bound():
    diagnosis = diagnose(fetching(available_bps=100e6))
    assert diagnosis.bottleneck_kind == "latency"
    assert "network requests (20 ms median each: latency-bound, not bandwidth-bound)" in (
        diagnosis.summary
    )
    # The run used 1% of what the probe reached: the probe's figure is a floor, not a bound.
    assert not any(b.name == "network" for b in diagnosis.bounds)


def test_a_saturated_link_is_named_network_bandwidth_bound():
    diagnosis = diagnose(fetching(available_bps=500_000))
    network = next(b for b in diagnosis.bounds if b.name == "network")
    # 0.5 MB/s / (8 samples x 12 kB per batch)
    assert network.rate == 500_000 / 96_000
    assert diagnosis.bottleneck_kind == "network"
    assert "network bandwidth" in diagnosis.summary
    assert "More requests in flight would not help" in diagnosis.summary


def test_without_a_probe_there_is_no_network_bound():
    diagnosis = diagnose(fetching(available_bps=None))
    assert not any(b.name == "network" for b in diagnosis.bounds)


def test_the_plan_never_puts_more_in_flight_than_the_server_took_before_refusing():
    profile = fetching(available_bps=100e6, refused_at=6)
    diagnosis = diagnose(profile)
    assert all(int(w.value) <= 5 for w in diagnosis.what_ifs if w.knob == "parallelism")
    assert "refused requests beyond 5 in flight" in diagnosis.summary
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    setting = next(s for s in plan.pipelines[0].settings if s.stage_id == "workers")
    assert setting.parallelism == 5
    assert "capped at 5: the server refused requests beyond that" in setting.reason


def test_the_network_paragraph_gives_latency_bytes_and_bandwidth_used():
    profile = fetching(available_bps=1.5e6, refused_at=6)
    text = describe(profile.network, profile.pipelines[0], samples=800)
    assert "800 HTTP requests to 127.0.0.1:9000, 12 kB per element" in text
    assert "latency 20 ms median, 25 ms p90 per request" in text
    assert "1.02 MB/s achieved of 1.5 MB/s available (68%)" in text
    assert "3 refused by the server (first with 6 in flight)" in text
    far = fetching(available_bps=100e6)
    assert "the probe reached 100 MB/s, a floor on the link" in describe(
        far.network, far.pipelines[0], samples=800)
