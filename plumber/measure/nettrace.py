"""Per-request tracing of the HTTP calls a run makes through urllib3.

boto3/botocore and requests send every request through urllib3's
``HTTPConnectionPool.urlopen``, so wrapping that one method sees object
storage reads whichever client made them. While a :class:`RequestTracer` is
active, each call records: its wall-clock start (``time.time()``, so traces of
several processes merge on one timeline), the time to the response headers,
the status or the exception (re-raised unchanged), the host, the method and
the body size the response declared (``Content-Length``; 0 when it declared
none) and, for a GET, which resource it read (:func:`resource_of`: a digest,
so the same object read twice can be told apart from two objects, without
keeping its name or any credential). ``HTTPResponse.release_conn`` is wrapped
too: urllib3 calls it when a streamed body has been read to its end, which is
when the request stops being outstanding. A body never read to the end counts
as outstanding until its headers only. With ``preload_content=True`` (urllib3's own default, not
boto3's or requests') the time to headers includes reading the body.

Each attempt counts: when urllib3 retries or follows a redirect inside one
``urlopen`` call, the earlier attempt is closed with the status or error
urllib3 recorded for it (including any back-off sleep), so a 503 retried by a
``Retry(status_forcelist=...)`` is still seen as a refusal.

Patching is process-wide but owned by the active tracers: the first one
installs it, the last one to exit restores the originals, and a tracer
records only in the process that started it. A worker process forked while a
tracer is active inherits the patch but not the recording; it starts its own
tracer and its snapshot is merged with the others (:mod:`plumber.measure.netsummary`).

Memory is bounded: after ``max_records`` requests, further ones are only
added to totals (count, bytes, statuses, failures, latency sum).

Credentials: :meth:`RequestTracer.snapshot` includes, under ``"replay"``, the
method, URL and headers of the largest successful GET, so that the network
probe can replay it. Those headers carry signatures (S3 SigV4
``Authorization``) and URLs may carry presigned query strings: keep the
snapshot in memory or in a private temporary file, and never copy
``"replay"`` into a Profile (:func:`plumber.measure.netsummary.merge_traces` does not).
Failure messages are stripped of query strings and URL userinfo for the same
reason (:mod:`plumber.records.redact`).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from plumber.records.redact import redact_message

#: Tags a snapshot, so a reader can tell a trace from other JSON.
FORMAT = "plumber.measure.nettrace/2"
#: The columns of each row of a snapshot's ``"requests"``.
FIELDS = (
    "start", "latency_s", "duration_s", "status", "host", "method", "bytes", "error", "resource",
)
MAX_RECORDS = 200_000
_MAX_MESSAGE = 300
#: Query parameters that select which bytes a GET returns (the rest, such as a
#: presigned URL's signature, change from one request to the next).
_SELECTING_PARAMS = ("versionId", "partNumber")
#: The attribute of a streamed urllib3 response that points back to its record.
_ON_RESPONSE = "_plumber_request"


class _Request:
    """One attempt, mutable until its body has been read (then its duration is final)."""

    __slots__ = (
        "start", "t0", "latency", "duration", "status", "host", "method", "nbytes", "error",
        "closed", "tracers", "replay", "resource",
    )

    def __init__(self, start: float, t0: float, host: str, method: str) -> None:
        self.start, self.t0, self.host, self.method = start, t0, host, method
        self.latency: float | None = None
        self.duration = 0.0
        self.status: int | None = None
        self.nbytes = 0
        self.error: str | None = None
        self.closed = False
        self.resource: str | None = None
        self.tracers: tuple[RequestTracer, ...] = ()
        #: Pool, URL and headers, held only until the tracer has seen the outcome.
        self.replay: tuple[Any, str, Any] | None = None

    def row(self) -> list[Any]:
        latency = None if self.latency is None else round(self.latency, 6)
        return [
            round(self.start, 6), latency, round(self.duration, 6), self.status, self.host,
            self.method, self.nbytes, self.error, self.resource,
        ]


class RequestTracer:
    """Records every urllib3 request made in this process while active (a context manager).

    Thread-safe: requests from any thread are recorded. :meth:`snapshot` may
    be taken during or after the traced block.
    """

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self.max_records = max_records
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._requests: list[_Request] = []
        self._overflow: dict[str, Any] = _empty_totals()
        self._largest: tuple[int, dict[str, Any]] | None = None

    def __enter__(self) -> RequestTracer:
        self._pid = os.getpid()
        _PATCH.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _PATCH.remove(self)

    @property
    def pid(self) -> int:
        """The process this tracer records in."""
        return self._pid

    def snapshot(self, include_replay: bool = True) -> dict[str, Any]:
        """The trace so far as a JSON-serialisable dict (rows in ``FIELDS`` order).

        ``include_replay=False`` leaves out the largest GET's URL and signed
        headers (see the module docstring); the probe then has nothing to replay.
        """
        with self._lock:
            rows = [request.row() for request in self._requests]
            overflow = {**self._overflow, "statuses": dict(self._overflow["statuses"])}
            largest = self._largest
        replay = largest[1] if include_replay and largest is not None else None
        return {
            "format": FORMAT, "pid": self._pid, "fields": list(FIELDS), "requests": rows,
            "overflow": overflow, "replay": replay,
        }

    def _add(self, request: _Request) -> None:
        with self._lock:
            if len(self._requests) < self.max_records:
                self._requests.append(request)
            else:
                _add_to_totals(self._overflow, request)
            if request.replay is not None and _replayable(request):
                if self._largest is None or request.nbytes > self._largest[0]:
                    self._largest = (request.nbytes, _replay_info(request))


def _empty_totals() -> dict[str, Any]:
    return {
        "requests": 0, "bytes": 0, "latency_sum_s": 0.0, "latency_count": 0, "statuses": {},
        "failures": 0, "first_failure": None,
    }


def _add_to_totals(totals: dict[str, Any], request: _Request) -> None:
    totals["requests"] += 1
    totals["bytes"] += request.nbytes
    if request.status is not None:
        key = str(request.status)
        totals["statuses"][key] = totals["statuses"].get(key, 0) + 1
        if request.status < 400 and request.latency is not None:
            totals["latency_sum_s"] += request.latency
            totals["latency_count"] += 1
    else:
        totals["failures"] += 1
        if totals["first_failure"] is None:
            totals["first_failure"] = [request.start + request.duration, request.error]


def _replayable(request: _Request) -> bool:
    return request.method == "GET" and request.status is not None and 200 <= request.status < 300


def _replay_info(request: _Request) -> dict[str, Any]:
    """What the probe needs to send the same GET again (holds credentials)."""
    assert request.replay is not None
    pool, url, headers = request.replay
    items = headers.items() if headers is not None else ()
    return {
        "scheme": pool.scheme, "host": pool.host, "port": pool.port, "url": url,
        "headers": {str(k): _text(v) for k, v in items}, "bytes": request.nbytes,
        "label": request.host,
    }


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def resource_of(host: str, url: str, headers: Any) -> str:
    """A short digest naming the bytes a GET asks for: host, path, range, version.

    Two requests with the same digest read the same bytes of the same object
    (as long as it did not change), so the run's reads per object can be
    counted. The signature parts of a presigned URL are left out: they differ
    on every request for the same object.
    """
    path, _, query = url.partition("?")
    selecting = sorted(
        part for part in query.split("&") if part.split("=", 1)[0] in _SELECTING_PARAMS
    )
    ranges = ""
    if headers is not None:
        for name, value in headers.items():
            if _text(name).lower() == "range":
                ranges = _text(value)
    identity = "\n".join((host, path, "&".join(selecting), ranges))
    return hashlib.blake2b(identity.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def _host_label(pool: Any) -> str:
    port = pool.port or {"http": 80, "https": 443}.get(pool.scheme, "")
    host = f"[{pool.host}]" if ":" in pool.host else pool.host
    return f"{host}:{port}"


def _declared_size(method: str, response: Any) -> int:
    """The body size the response declared, 0 for bodiless responses or when undeclared."""
    status = response.status
    if method == "HEAD" or status < 200 or status in (204, 304):
        return 0
    try:
        return max(int(response.headers.get("Content-Length", 0)), 0)
    except (TypeError, ValueError):
        return 0


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of a failed request, unwrapping urllib3's MaxRetryError.

    Query strings and URL userinfo are cut from the message (presigned URLs
    are credentials; :func:`plumber.records.redact.redact_message`), and so is the
    connection object's address, which only adds noise.
    """
    reason = getattr(exc, "reason", None)
    if type(exc).__name__ == "MaxRetryError" and isinstance(reason, BaseException):
        exc = reason
    message = re.sub(r"<[\w.]+ object at 0x[0-9a-fA-F]+>:\s*", "", str(exc))
    message = redact_message(message)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:_MAX_MESSAGE]


class _Patch:
    """The wrapped urllib3 methods, installed while at least one tracer is active."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._saved: tuple[Callable[..., Any], Callable[..., Any]] | None = None
        self.tracers: tuple[RequestTracer, ...] = ()

    def add(self, tracer: RequestTracer) -> None:
        with self._lock:
            if self._saved is None:
                self._install()
            self.tracers = (*self.tracers, tracer)

    def remove(self, tracer: RequestTracer) -> None:
        with self._lock:
            self.tracers = tuple(t for t in self.tracers if t is not tracer)
            if not self.tracers and self._saved is not None:
                from urllib3.connectionpool import HTTPConnectionPool
                from urllib3.response import HTTPResponse

                HTTPConnectionPool.urlopen, HTTPResponse.release_conn = self._saved
                self._saved = None

    def after_fork(self) -> None:
        """A lock held by another thread at fork time would never be released in the child."""
        self._lock = threading.Lock()

    def _install(self) -> None:
        """Wrap urllib3's methods; without urllib3 no request can go through it: nothing to do."""
        try:
            from urllib3.connectionpool import HTTPConnectionPool
            from urllib3.response import HTTPResponse
        except ImportError:
            return

        urlopen, release_conn = HTTPConnectionPool.urlopen, HTTPResponse.release_conn
        self._saved = (urlopen, release_conn)
        patch = self

        def traced_urlopen(pool: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            pid = os.getpid()
            tracers = tuple(t for t in patch.tracers if t.pid == pid)
            if not tracers:
                return urlopen(pool, method, url, *args, **kwargs)
            return patch.trace(tracers, urlopen, pool, method, url, args, kwargs)

        def traced_release_conn(response: Any) -> Any:
            request = getattr(response, _ON_RESPONSE, None)
            if request is not None:
                setattr(response, _ON_RESPONSE, None)
                request.duration = max(request.duration, time.perf_counter() - request.t0)
            return release_conn(response)

        HTTPConnectionPool.urlopen = traced_urlopen  # type: ignore[method-assign]
        HTTPResponse.release_conn = traced_release_conn  # type: ignore[method-assign]

    def trace(
        self,
        tracers: tuple[RequestTracer, ...],
        urlopen: Callable[..., Any],
        pool: Any,
        method: str,
        url: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Call ``urlopen`` and record the attempt it makes (see the module docstring)."""
        request = _Request(time.time(), time.perf_counter(), _host_label(pool), method)
        request.tracers = tracers
        headers = kwargs["headers"] if "headers" in kwargs else _positional(args, 1)
        if method == "GET":
            request.replay = (pool, url, headers)
            request.resource = resource_of(request.host, url, headers)
        stack: list[_Request] = self._local.__dict__.setdefault("stack", [])
        if stack:
            retries = kwargs["retries"] if "retries" in kwargs else _positional(args, 2)
            _close_superseded(stack[-1], retries)
        stack.append(request)
        try:
            response = urlopen(pool, method, url, *args, **kwargs)
        except Exception as exc:
            if not request.closed:
                request.duration = time.perf_counter() - request.t0
                request.error = describe_failure(exc)
                _finish(request)
            raise
        finally:
            stack.pop()
        if not request.closed:
            request.latency = request.duration = time.perf_counter() - request.t0
            request.status = response.status
            request.nbytes = _declared_size(method, response)
            _finish(request)
            try:
                setattr(response, _ON_RESPONSE, request)
            except AttributeError:  # a response type without instance attributes
                pass
        return response


def _positional(args: tuple[Any, ...], index: int) -> Any:
    return args[index] if len(args) > index else None


def _close_superseded(request: _Request, retries: Any) -> None:
    """End an attempt that urllib3 is retrying or redirecting, with the outcome it noted."""
    history = getattr(retries, "history", None) or ()
    last = history[-1] if history else None
    request.duration = time.perf_counter() - request.t0
    if last is not None and last.status:
        request.status, request.latency = int(last.status), request.duration
    elif last is not None and last.error is not None:
        request.error = describe_failure(last.error)
    else:
        request.error = "RetryError: retried by urllib3"
    _finish(request)


def _finish(request: _Request) -> None:
    request.closed = True
    for tracer in request.tracers:
        tracer._add(request)
    request.tracers, request.replay = (), None


_PATCH = _Patch()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_PATCH.after_fork)


__all__ = [
    "FIELDS", "FORMAT", "MAX_RECORDS", "RequestTracer", "describe_failure", "resource_of",
]
