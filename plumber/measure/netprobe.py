"""The network's available bandwidth and latency, by replaying the run's largest GET.

Run after the script, like the disk probe. The largest successful GET the
run made (:func:`plumber.measure.netsummary.largest_get`) is sent again with the same
URL and headers: GET is idempotent, and S3 SigV4 signatures stay valid for
minutes, long enough for a probe right after the run. First one request at a
time (the median time to headers of a few, on a warm connection: the latency
of one request alone), then several at once (1, 4, 16 by default) to see the
bandwidth the server and the path give when enough requests are in flight.
Concurrency stops rising when bandwidth stops rising, when the time budget is
spent, or when the server refuses a request (HTTP 503/429): the probe never
pushes past the point where the server pushed back. After a refusal it
halves the gap between the most in flight the server took and the fewest
it refused, with what is left of the budget: from 1, 4, 16 alone, a server
taking at most 4 read as refusing at 16, and a plan kept 15 in flight.
With several in flight
each request takes longer than alone once the server (or this machine)
serves them as fast as it can; the best level's time per request, by
Little's law (in flight / requests per second), is that loaded latency.

:func:`probe_network` never raises; a failure is reported in the basis.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Requests in flight tried, in order.
LEVELS = (1, 4, 16)
#: A level must beat the best so far by this factor for the probe to go on.
_RISE = 1.1
#: Share of the budget for the one-at-a-time latency requests.
_LATENCY_SHARE = 0.25
_LATENCY_REPEATS = 3
_CHUNK = 1 << 16
_REFUSED = frozenset({429, 503})


@dataclass(frozen=True)
class NetworkProbe:
    """What the probe found: ``available_bps`` at best, one request's latency, and how.

    ``refused_in_flight`` is the fewest replays in flight at which the server
    refused one (None when it never did): a limit the plan must respect as
    much as a refusal seen during the run. ``loaded_latency_s`` is the time
    per request at the best level, with ``loaded_in_flight`` in flight (None
    when no level had more than one).
    """

    available_bps: float | None
    latency_s: float | None
    basis: str
    refused_in_flight: int | None = None
    loaded_latency_s: float | None = None
    loaded_in_flight: int | None = None


@dataclass
class _Level:
    """Totals of the requests made at one concurrency."""

    in_flight: int
    requests: int = 0
    bytes: int = 0
    #: Why concurrency was not raised past this level (a refusal, an error), if it was not.
    stopped_by: str = ""
    #: Whether what stopped it was the server refusing a request.
    refused: bool = False
    elapsed_s: float = 0.0

    @property
    def bps(self) -> float:
        return self.bytes / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency_s(self) -> float | None:
        """Seconds per request with ``in_flight`` outstanding (Little's law)."""
        return self.in_flight * self.elapsed_s / self.requests if self.requests else None


def probe_network(
    replay: Mapping[str, Any] | None, budget_s: float = 2.0, levels: Sequence[int] = LEVELS
) -> NetworkProbe:
    """Replay ``replay`` (a trace's GET) to measure latency and bandwidth within ``budget_s``."""
    if not replay:
        return NetworkProbe(None, None, "no probe: the run made no successful GET to replay")
    try:
        return _Prober(replay, budget_s, max(levels, default=1)).run(levels)
    except Exception as exc:  # noqa: BLE001 - a probe must never fail the profile
        label = replay.get("label", "the server")
        return NetworkProbe(None, None, f"no probe: replaying a GET from {label} failed "
                                        f"({_failure(exc)})")


class _Prober:
    def __init__(self, replay: Mapping[str, Any], budget_s: float, max_in_flight: int) -> None:
        import urllib3

        self.url = str(replay["url"])
        self.headers = dict(replay.get("headers") or {})
        self.label = str(replay.get("label") or replay["host"])
        self.size = int(replay.get("bytes", 0))
        self.deadline = time.perf_counter() + max(budget_s, 0.0)
        origin = f"{replay['scheme']}://{_bracketed(str(replay['host']))}"
        if replay.get("port"):
            origin += f":{replay['port']}"
        timeout = urllib3.Timeout(connect=max(budget_s, 0.1), read=max(budget_s, 0.1))
        self.pool = urllib3.connection_from_url(origin, maxsize=max_in_flight, timeout=timeout)

    def run(self, levels: Sequence[int]) -> NetworkProbe:
        try:
            return self._measure(levels)
        finally:
            self.pool.close()

    def _measure(self, levels: Sequence[int]) -> NetworkProbe:
        stop = time.perf_counter() + _LATENCY_SHARE * (self.deadline - time.perf_counter())
        status, _, _ = self._get(stop)  # opens the connection, checks the replay
        if not 200 <= status < 300:
            reason = "the server refused it" if status in _REFUSED else "it was not accepted"
            return NetworkProbe(None, None, f"no probe: replaying a GET from {self.label} got "
                                            f"HTTP {status} ({reason})")
        latency = self._latency(stop)
        tried: list[_Level] = []
        for in_flight in levels:
            remaining = self.deadline - time.perf_counter()
            if remaining <= 0:
                break
            level = self._level(in_flight, remaining / (len(levels) - len(tried)))
            tried.append(level)
            best = max(tried[:-1], key=lambda lv: lv.bps, default=None)
            if level.stopped_by or (best and level.bps < best.bps * _RISE):
                break
        if tried and tried[-1].refused:
            taken = max((lv.in_flight for lv in tried if not lv.stopped_by), default=0)
            tried += self._narrow(taken, tried[-1].in_flight)
        return self._result(latency, tried)

    def _narrow(self, taken: int, refused: int) -> list[_Level]:
        """Levels halving the gap between ``taken`` in flight (no refusal) and ``refused``.

        A refused level ends at its first refusal, so narrowing down to a
        low limit is quick; a level the server takes runs its share of what
        is left of the budget. Stops at an error, which says nothing of the limit.
        """
        levels: list[_Level] = []
        while refused - taken > 1:
            remaining = self.deadline - time.perf_counter()
            if remaining <= 0:
                break
            middle = (taken + refused) // 2
            level = self._level(middle, remaining / math.ceil(math.log2(refused - taken)))
            levels.append(level)
            if level.refused:
                refused = middle
            elif level.stopped_by:
                break
            else:
                taken = middle
        return levels

    def _latency(self, stop: float) -> float | None:
        """Median time to headers of a few GETs sent one at a time, until ``stop``."""
        times = []
        while len(times) < _LATENCY_REPEATS and time.perf_counter() < stop:
            status, headers_s, _ = self._get(stop)
            if not 200 <= status < 300:
                break
            times.append(headers_s)
        return statistics.median(times) if times else None

    def _level(self, in_flight: int, budget_s: float) -> _Level:
        """``in_flight`` threads GETting back to back for about ``budget_s``."""
        level, lock = _Level(in_flight), threading.Lock()
        start = time.perf_counter()
        stop = start + budget_s

        def fetch_until_stop() -> None:
            sent = 0
            while not level.stopped_by and (sent == 0 or time.perf_counter() < stop):
                try:
                    status, _, nbytes = self._get(stop)
                except Exception as exc:  # noqa: BLE001 - reported in the basis
                    with lock:
                        level.stopped_by = level.stopped_by or _failure(exc)
                    return
                sent += 1
                with lock:
                    level.requests += 1
                    if 200 <= status < 300:
                        level.bytes += nbytes
                    elif status in _REFUSED:
                        level.stopped_by = f"the server refused a request (HTTP {status})"
                        level.refused = True
                    else:
                        level.stopped_by = f"a replay got HTTP {status}"

        threads = [threading.Thread(target=fetch_until_stop, daemon=True) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(self.deadline - time.perf_counter(), 0.0) + 1.0)
        level.elapsed_s = time.perf_counter() - start
        return level

    def _get(self, stop: float) -> tuple[int, float, int]:
        """(status, seconds to headers, body bytes read before ``stop``)."""
        t0 = time.perf_counter()
        response = self.pool.urlopen(
            "GET", self.url, headers=self.headers, retries=False, redirect=False,
            assert_same_host=False, preload_content=False, decode_content=False,
        )
        headers_s = time.perf_counter() - t0
        nbytes = 0
        try:
            for chunk in response.stream(_CHUNK):
                nbytes += len(chunk)
                if time.perf_counter() >= stop:
                    response.close()  # a cut-short body leaves the connection unusable
                    break
        finally:
            response.release_conn()
        return response.status, headers_s, nbytes

    def _result(self, latency: float | None, tried: list[_Level]) -> NetworkProbe:
        if not tried:
            return NetworkProbe(None, latency, f"replayed a {_size(self.size)} GET from "
                                               f"{self.label}; no time left to measure bandwidth")
        best = max([lv for lv in tried if not lv.refused] or tried, key=lambda lv: lv.bps)
        requests = sum(lv.requests for lv in tried)
        levels = ", ".join(str(lv.in_flight) for lv in tried)
        basis = (
            f"replayed a {_size(self.size)} GET from {self.label} {requests} times, "
            f"{best.in_flight} at once at best (tried {levels})"
        )
        fewest = min((lv for lv in tried if lv.refused), key=lambda lv: lv.in_flight, default=None)
        last = tried[-1]
        if fewest is not None:
            taken = [lv.in_flight for lv in tried
                     if not lv.stopped_by and lv.in_flight < fewest.in_flight]
            basis += f"; at {fewest.in_flight} in flight {fewest.stopped_by}"
            basis += f", at {max(taken)} it did not" if taken else ""
            basis += ", so no more were kept in flight"
        elif last.stopped_by:
            basis += f"; at {last.in_flight} in flight {last.stopped_by}, so no more were tried"
        loaded = best.in_flight > 1 and best.bytes > 0
        return NetworkProbe(
            best.bps if best.bytes else None, latency, basis,
            fewest.in_flight if fewest is not None else None,
            best.latency_s if loaded else None, best.in_flight if loaded else None,
        )


def _failure(exc: BaseException) -> str:
    from plumber.measure.nettrace import describe_failure

    return describe_failure(exc)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _size(nbytes: int) -> str:
    """Bytes in decimal units, as in ``1.2 MB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"
