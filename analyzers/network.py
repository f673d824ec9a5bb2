"""What the run's HTTP requests say about the network: its bound and its refusals.

A pipeline reading from object storage pays a round trip per request. Two
limits follow (README.md, How it works, step 5): bandwidth, ``available bytes/s / bytes
fetched per root element``, a bound like the disk's; and the server's
tolerance for requests in flight: once it refused one (HTTP 503 SlowDown or
429), a plan must not put more in flight than were outstanding then.
Latency itself is not a bound of its own: it makes the fetching stage wait,
and that stage's parallelism / wall time bound already carries it.
"""

from __future__ import annotations

import math

from plumber.analyzers import text
from plumber.records.profile import NetworkRequests, Pipeline, Profile


def bytes_per_root(profile: Profile, roots: int) -> float | None:
    """Bytes fetched over the network per root element; only attributable to a lone pipeline."""
    network = profile.network
    if network is None or network.bytes_received <= 0 or len(profile.pipelines) != 1:
        return None
    return network.bytes_received / roots


#: The run must have used this share of the probed bandwidth for the probe to bound it.
NEAR_LINK = 0.5


def available_bps(network: NetworkRequests | None) -> float | None:
    """The bandwidth the probe reached, or None when it did not run."""
    if network is None or network.available_bps is None or not network.available_bps > 0:
        return None
    return network.available_bps


def bounding_bps(network: NetworkRequests | None, pipeline: Pipeline) -> float | None:
    """The probed bandwidth as a bound, only when the run came near it.

    The probe replays one of the run's own requests a few at a time, so for
    small objects it measures round trips, not the link: a figure well above
    what the run used is a floor on the link, not its capacity, and bounding
    the rate by it would cap every prediction for more requests in flight.
    """
    available = available_bps(network)
    if available is None or network is None:
        return None
    achieved = achieved_bps(network, pipeline)
    return available if math.isfinite(achieved) and achieved >= NEAR_LINK * available else None


def requests_per_root(network: NetworkRequests | None, bytes_per_root: float | None) -> float:
    """Requests per root element, from the bytes per root element (0 when unknown)."""
    if network is None or not bytes_per_root or network.bytes_received <= 0:
        return 0.0
    return bytes_per_root * network.requests / network.bytes_received


def latency_in_flight(network: NetworkRequests, ran_with: float, in_flight: int) -> float:
    """Mean seconds per request with ``in_flight`` outstanding, for a stage that ran ``ran_with``.

    The run's mean latency holds for the calls the run had in flight. Once
    the server (or this machine) serves requests as fast as it can, each
    waits its turn and latency rises with requests in flight; the probe
    measured it at ``probe_loaded_in_flight``. In between it is taken to rise
    in line with requests in flight, as a queue's does; beyond the probe's
    level it stays at what the probe measured, as nothing above was measured.
    """
    base = network.latency_mean_s
    loaded, level = network.probe_loaded_latency_s, network.probe_loaded_in_flight
    if loaded is None or level is None or level <= ran_with or not loaded > base:
        return base
    share = min(max(in_flight - ran_with, 0.0) / (level - ran_with), 1.0)
    return base + share * (loaded - base)


def in_flight_cap(network: NetworkRequests | None) -> int | None:
    """The most requests a plan may keep in flight: fewer than when the server first refused.

    None when the server never refused one (no limit was seen).
    """
    if network is None or network.in_flight_at_first_refusal is None:
        return None
    return max(1, network.in_flight_at_first_refusal - 1)


def achieved_bps(network: NetworkRequests, pipeline: Pipeline) -> float:
    """Bytes per second the pipeline fetched over its iteration (NaN when unknown)."""
    duration = pipeline.duration_s
    return network.bytes_received / duration if duration > 0 else math.nan


def describe(network: NetworkRequests, pipeline: Pipeline, samples: int | None) -> str:
    """One paragraph: requests, latency, bytes per element, achieved vs available bandwidth."""
    per = (
        f", {text.size(network.bytes_received / samples)} per element"
        if samples and network.bytes_received > 0
        else ""
    )
    achieved = achieved_bps(network, pipeline)
    available = available_bps(network)
    bandwidth = f"{text.size(achieved)}/s achieved" if math.isfinite(achieved) else ""
    if available is not None and bandwidth:
        bandwidth += (
            f" of {text.size(available)}/s available ({achieved / available:.0%})"
            if bounding_bps(network, pipeline) is not None
            else f"; the probe reached {text.size(available)}/s, a floor on the link"
        )
    parts = [
        f"{network.requests:,} HTTP requests to {', '.join(network.hosts) or 'unknown hosts'}"
        f"{per}",
        f"latency {text.ms(network.latency_p50_s)} median, {text.ms(network.latency_p90_s)} "
        f"p90 per request",
        f"up to {network.in_flight_max} in flight",
    ]
    if bandwidth:
        parts.append(bandwidth)
    if network.refused:
        parts.append(
            f"{network.refused} refused by the server (first with "
            f"{network.in_flight_at_first_refusal} in flight)"
        )
    if network.failures:
        parts.append(f"{network.failures} failed ({network.first_failure})")
    return "; ".join(parts) + "."
