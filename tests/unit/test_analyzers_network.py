"""Pipelines that read over the network: latency versus bandwidth, and the
server's refusals as a limit on requests in flight."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from plumber.analyzers.allocate import allocate
from plumber.analyzers.diagnose import diagnose, scene
from plumber.analyzers.network import describe, latency_in_flight
from plumber.records.profile import NetworkRequests
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


def test_latency_rises_from_the_runs_with_requests_in_flight_up_to_the_probes_level():
    network = dataclasses.replace(fetching(available_bps=100e6).network,
                                  probe_loaded_latency_s=0.06, probe_loaded_in_flight=16)
    # The run had 2 in flight at 20 ms; the probe measured 60 ms with 16.
    assert latency_in_flight(network, 2, 2) == 0.02
    assert latency_in_flight(network, 2, 9) == pytest.approx(0.02 + 0.5 * 0.04)
    assert latency_in_flight(network, 2, 16) == 0.06
    assert latency_in_flight(network, 2, 40) == 0.06  # nothing above 16 was measured
    # A run that had as many in flight as the probe already paid that latency.
    assert latency_in_flight(network, 16, 40) == 0.02
    unloaded = dataclasses.replace(network, probe_loaded_latency_s=0.015)
    assert latency_in_flight(unloaded, 2, 40) == 0.02


def test_calls_in_flight_are_sized_for_the_latency_they_bring():
    # Per batch: 8 GETs, 0.1696 s of wall time with the run's 20 ms each; the consumer
    # allows 100/s. Little's law at 20 ms: ceil(1.25 x 100 x 0.1696) = 22 in flight. With
    # 22, requests take the probe's 60 ms (measured with 16 in flight): the wall becomes
    # 0.1696 + 8 x 0.04 = 0.4896 s and Little's law ceil(1.25 x 100 x 0.4896) = 62.
    alone = fetching(available_bps=100e6)
    allocation = allocate(scene(alone, alone.pipelines[0]))
    assert (allocation.parallelism, allocation.walls) == ({"workers": 22}, {})
    loaded = dataclasses.replace(alone, network=dataclasses.replace(
        alone.network, probe_loaded_latency_s=0.06, probe_loaded_in_flight=16))
    allocation = allocate(scene(loaded, loaded.pipelines[0]))
    assert allocation.parallelism == {"workers": 62}
    assert allocation.walls == {"workers": pytest.approx(0.4896)}
    assert ("with 62 in flight a request takes about 60 ms (the run's 20 ms, the probe's "
            "60 ms with 16 in flight)") in allocation.reasons["workers"]
