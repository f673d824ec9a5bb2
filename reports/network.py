"""The run's HTTP requests in the report: latency, bytes, bandwidth, refusals, failures.

The paragraph is the analysis's own (:func:`plumber.analyzers.network.describe`),
so the report and the diagnosis describe the network in the same words; the
facts under it add the probe's basis, the HTTP statuses and the first failure.
Requests are recorded for the whole run: with one pipeline they are its
reads, with several they cannot be attributed, and the bandwidth is then
taken over the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass

from plumber.analyzers.network import describe
from plumber.records.profile import NetworkRequests, Pipeline, Profile
from plumber.reports import format as fmt


@dataclass(frozen=True)
class NetworkView:
    """The network section: one paragraph, then label/value facts; ``alert`` on refusals."""

    paragraph: str
    facts: tuple[tuple[str, str], ...]
    alert: bool


def samples_read(pipeline: Pipeline) -> int | None:
    """Samples fetched: the most elements any source stage produced, None when unmeasured.

    A torch loader has one source (its fetch); of a tf.data zip of images and
    labels, the larger count is the one the requests were made for.
    """
    counts = [
        s.stats.elements for s in pipeline.stages if s.kind == "source" and s.stats is not None
    ]
    return max(counts, default=0) or None


def network_paragraph(profile: Profile) -> str | None:
    """The analysis's paragraph on the run's requests, or None when none were recorded."""
    network = profile.network
    if network is None:
        return None
    if len(profile.pipelines) == 1:
        pipeline = profile.pipelines[0]
        return describe(network, pipeline, samples_read(pipeline))
    # Not attributable to one pipeline: bandwidth over the run, no per-element bytes.
    whole_run = Pipeline(id="run", root="", stages=(), duration_s=profile.run.duration_s)
    return describe(network, whole_run, None)


def network_view(profile: Profile) -> NetworkView | None:
    """The network section of ``profile``, or None when the run made no recorded request."""
    network = profile.network
    paragraph = network_paragraph(profile)
    if network is None or paragraph is None:
        return None
    if len(profile.pipelines) > 1:
        paragraph += (
            f" The run had {len(profile.pipelines)} pipelines; requests are not attributed to "
            "one, so bandwidth is over the whole run."
        )
    return NetworkView(paragraph, _facts(network), alert=network.refused > 0)


def _facts(network: NetworkRequests) -> tuple[tuple[str, str], ...]:
    """Received bytes, statuses, the probe and its basis, and the first failure."""
    rows = [
        ("Received", f"{fmt.size(network.bytes_received)} in {fmt.count(network.requests)} "
                     f"requests, {fmt.seconds(network.busy_s)} with one or more in flight"),
        ("Latency", f"{fmt.seconds(network.latency_mean_s)} mean, "
                    f"{fmt.seconds(network.latency_p50_s)} median, "
                    f"{fmt.seconds(network.latency_p90_s)} p90"),
    ]
    if network.statuses:
        statuses = sorted(network.statuses.items())
        rows.append(("HTTP statuses", ", ".join(f"{code}: {n:,}" for code, n in statuses)))
    probe = []
    if fmt.is_number(network.available_bps):
        probe.append(f"{fmt.bandwidth(network.available_bps)} available")
    if fmt.is_number(network.probe_latency_s):
        probe.append(f"{fmt.seconds(network.probe_latency_s)} per request")
    basis = network.probe_basis or "no probe ran"
    rows.append(("Probe", "; ".join([*probe, basis])))
    if network.first_failure:
        rows.append(("First failure", network.first_failure))
    return tuple(rows)


def network_line(profile: Profile) -> str | None:
    """The terminal's one line: requests and hosts, latency, refusals, failures."""
    network = profile.network
    if network is None:
        return None
    hosts = ", ".join(network.hosts) or "unknown hosts"
    parts = [
        f"{network.requests:,} requests to {hosts}",
        f"{fmt.seconds(network.latency_p50_s)} median, "
        f"{fmt.seconds(network.latency_p90_s)} p90 per request",
    ]
    if fmt.is_number(network.available_bps):
        parts.append(f"{fmt.bandwidth(network.available_bps)} available")
    if network.refused:
        parts.append(
            f"{network.refused} refused (first with {network.in_flight_at_first_refusal} "
            "in flight)"
        )
    if network.failures:
        parts.append(f"{network.failures} failed")
    return "; ".join(parts)
