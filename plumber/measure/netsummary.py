"""Merge per-process request traces into the Profile's :class:`NetworkRequests`.

Each process of a run (the main one, DataLoader workers) leaves one
:meth:`plumber.measure.nettrace.RequestTracer.snapshot`. Their rows share one clock
(``time.time()``), so in-flight counts and busy time are computed on a single
timeline by sweeping every request's start and end. A request is outstanding
from its start until its body was read (or its headers arrived, when the body
was never read to the end, or it failed).

Requests beyond a tracer's record limit only add to the totals (count,
bytes, statuses, failures, mean latency); percentiles, busy time and in-flight
counts come from the recorded rows.

Reads per object come from the successful GETs' resource digests (the same
object and byte range read again has the same digest): how many distinct
objects the run read, how often, and their bytes counted once, which is what
a cache of fetched objects would hold.

The replay information snapshots carry (signed headers) is only ever passed
to the probe; nothing of it reaches the :class:`NetworkRequests`, and the
failure message that does is redacted (:mod:`plumber.records.redact`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plumber.measure.netprobe import NetworkProbe, probe_network
from plumber.measure.nettrace import FORMAT
from plumber.records.profile import NetworkRequests
from plumber.records.redact import redact_message

#: Statuses by which a server refuses a request for load (S3 ``SlowDown`` is 503).
REFUSED = frozenset({429, 503})


@dataclass(frozen=True)
class _Row:
    start: float
    end: float
    latency: float | None
    status: int | None
    host: str
    nbytes: int
    error: str | None
    resource: str | None


def merge_traces(traces: Iterable[Mapping[str, Any]]) -> NetworkRequests | None:
    """The run's requests across all processes' snapshots; ``None`` when none was made.

    Snapshots that are not traces (wrong ``format``) and malformed rows are skipped.
    """
    traces = [t for t in traces if isinstance(t, Mapping) and t.get("format") == FORMAT]
    rows = sorted((r for t in traces for r in _rows(t)), key=lambda r: r.start)
    totals = [t["overflow"] for t in traces if isinstance(t.get("overflow"), Mapping)]
    extra = sum(int(o.get("requests", 0)) for o in totals)
    if not rows and not extra:
        return None
    ok = sorted(r.latency for r in rows if _ok(r) and r.latency is not None)
    latency_sum = sum(ok) + sum(float(o.get("latency_sum_s", 0.0)) for o in totals)
    latency_count = len(ok) + sum(int(o.get("latency_count", 0)) for o in totals)
    statuses: Counter[str] = Counter(str(r.status) for r in rows if r.status is not None)
    for overflow in totals:
        statuses.update({str(k): int(v) for k, v in dict(overflow.get("statuses", {})).items()})
    refusals = sorted((r for r in rows if r.status in REFUSED), key=_answered_at)
    failures = [r for r in rows if r.status is None]
    # Rows beyond a tracer's record limit carry no resource: reads per object are unknown.
    objects = _objects_read(rows) if not extra else {}
    return NetworkRequests(
        requests=len(rows) + extra,
        bytes_received=sum(r.nbytes for r in rows) + sum(int(o.get("bytes", 0)) for o in totals),
        busy_s=_busy(rows),
        latency_mean_s=latency_sum / latency_count if latency_count else math.nan,
        latency_p50_s=_quantile(ok, 0.5),
        latency_p90_s=_quantile(ok, 0.9),
        in_flight_max=_in_flight_max(rows),
        hosts=tuple(sorted({r.host for r in rows})),
        statuses=dict(sorted(statuses.items())),
        refused=sum(n for status, n in statuses.items() if int(status) in REFUSED),
        in_flight_at_first_refusal=(
            _in_flight_at(rows, _answered_at(refusals[0])) if refusals else None
        ),
        failures=len(failures) + sum(int(o.get("failures", 0)) for o in totals),
        first_failure=_first_failure(failures, totals),
        object_reads=sum(reads for reads, _ in objects.values()),
        objects_read=len(objects),
        object_bytes=sum(size for _, size in objects.values()),
    )


def _objects_read(rows: list[_Row]) -> dict[str, tuple[int, int]]:
    """Per resource digest of a successful GET: how many times it was read, and its size."""
    objects: dict[str, tuple[int, int]] = {}
    for row in rows:
        if row.resource is None or row.status is None or not 200 <= row.status < 300:
            continue
        reads, size = objects.get(row.resource, (0, 0))
        objects[row.resource] = (reads + 1, max(size, row.nbytes))
    return objects


def largest_get(traces: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The replay information of the largest successful GET of all processes (credentials!)."""
    replays = [
        t["replay"] for t in traces
        if isinstance(t, Mapping) and isinstance(t.get("replay"), Mapping)
    ]
    return dict(max(replays, key=lambda r: int(r.get("bytes", 0)))) if replays else None


def with_probe(network: NetworkRequests, probe: NetworkProbe) -> NetworkRequests:
    """``network`` with the probe's findings filled in, a refusal during the probe included."""
    refusal = network.in_flight_at_first_refusal
    if probe.refused_in_flight is not None:
        refusal = min(refusal or probe.refused_in_flight, probe.refused_in_flight)
    return dataclasses.replace(
        network,
        available_bps=probe.available_bps,
        probe_latency_s=probe.latency_s,
        probe_basis=probe.basis,
        probe_loaded_latency_s=probe.loaded_latency_s,
        probe_loaded_in_flight=probe.loaded_in_flight,
        in_flight_at_first_refusal=refusal,
    )


def summarize_network(
    traces: Iterable[Mapping[str, Any]], probe_budget_s: float = 2.0
) -> NetworkRequests | None:
    """Merge the traces, then probe the network by replaying the largest GET.

    Meant to run after the script (like the capacity probes); the probe
    never raises and spends about ``probe_budget_s``; 0 skips it.
    """
    traces = list(traces)
    network = merge_traces(traces)
    if network is None:
        return None
    if probe_budget_s <= 0:
        return with_probe(network, NetworkProbe(None, None, "no probe: the probe was turned off"))
    return with_probe(network, probe_network(largest_get(traces), budget_s=probe_budget_s))


def _rows(trace: Mapping[str, Any]) -> Iterable[_Row]:
    for row in trace.get("requests") or ():
        try:
            start, latency, duration, status, host, _method, nbytes, error, resource = row
            yield _Row(
                start=float(start),
                end=float(start) + max(float(duration), 0.0),
                latency=None if latency is None else float(latency),
                status=None if status is None else int(status),
                host=str(host),
                nbytes=int(nbytes),
                error=None if error is None else str(error),
                resource=None if resource is None else str(resource),
            )
        except (TypeError, ValueError):
            continue


def _ok(row: _Row) -> bool:
    return row.status is not None and row.status < 400


def _answered_at(row: _Row) -> float:
    """When the response (or the failure) came back."""
    return row.start + (row.latency if row.latency is not None else row.end - row.start)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list; NaN when empty."""
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _busy(rows: list[_Row]) -> float:
    """Length of the union of the requests' intervals (rows sorted by start)."""
    total, current_start, current_end = 0.0, None, None
    for row in rows:
        if current_end is None or row.start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = row.start, row.end
        else:
            current_end = max(current_end, row.end)
    if current_end is not None:
        total += current_end - current_start
    return total


def _in_flight_max(rows: list[_Row]) -> int:
    """Most requests outstanding at once; one ending when another starts does not overlap it."""
    events = sorted([(r.start, 1) for r in rows] + [(r.end, -1) for r in rows])
    most = current = 0
    for _, change in events:  # at equal times -1 sorts first
        current += change
        most = max(most, current)
    return most


def _in_flight_at(rows: list[_Row], moment: float) -> int:
    """Requests outstanding at ``moment``, one answered at that moment included."""
    return sum(1 for r in rows if r.start <= moment <= r.end)


def _first_failure(failures: list[_Row], totals: list[Mapping[str, Any]]) -> str | None:
    """The earliest failure's message, redacted again: workers' traces are read back from disk."""
    candidates = [(r.end, r.error or "unknown failure") for r in failures]
    for overflow in totals:
        first = overflow.get("first_failure")
        if isinstance(first, (list, tuple)) and len(first) == 2:
            candidates.append((float(first[0]), str(first[1])))
    return redact_message(min(candidates)[1]) if candidates else None
