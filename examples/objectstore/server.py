"""A real S3 server on loopback that behaves like remote object storage.

It serves moto's S3 implementation over real HTTP on 127.0.0.1 (threaded, so
64+ requests can be in flight) and wraps it in WSGI middleware that adds what
a remote store has and loopback lacks:

- latency: every request waits ``latency_s`` (plus a uniform random extra in
  ``[0, jitter_s]``) before it is answered, like a round trip to a far server;
- bandwidth: response bodies go out in 64 KiB chunks through one shared link;
  each chunk reserves the link for ``size / bandwidth_bps`` seconds, so
  concurrent responses share the limit (a link, not a per-request cap);
- throttling: a request that arrives while ``max_in_flight`` requests are
  already in flight is answered ``503 SlowDown`` with S3's XML error body,
  which boto3 reports as a ``SlowDown`` ClientError and retries as it does
  for S3;
- going away: ``stop()`` (or ``stop_after_gets``: after that many GETs, so an
  upload does not count) closes the listening socket and every open
  connection, so clients fail fast instead of hanging.

Use it in-process (tests) or as a separate process (the examples and a user,
so that the server's own CPU does not count against the pipeline measured)::

    with S3Server(latency_s=0.05, bandwidth_bps=50e6) as server:
        boto3.client("s3", endpoint_url=server.endpoint_url, ...)

    with S3ServerProcess(latency_s=0.05) as server:   # same options, own process
        ...

    python examples/objectstore/server.py --latency 50ms --bandwidth 50MB/s --port 9000

All in-process servers share moto's global state (buckets are per process).
An in-process server whose process then forks (DataLoader workers) leaves
copies of its sockets in the children; use ``S3ServerProcess`` there.

Measured here (2 cores, one boto3 client, GET of a 20 KB object, median of 40,
in-process / separate process): 0 ms injected -> 2.5 / 2.5 ms per GET,
5 ms -> 7.5 / 8.6 ms, 50 ms -> 54.3 / 54.7 ms. moto itself costs a few ms of
CPU per request, so the server saturates: about 400 GETs/s with 8 in flight
and 340 with 32 (separate process, boto3 client on the same 2 cores). That is
a real server limit, not noise.
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

CHUNK_BYTES = 64 * 1024
SLOW_DOWN_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    "<RequestId>{request_id}</RequestId></Error>"
)


@dataclass(frozen=True)
class Conditions:
    """The network a request crosses: what the middleware adds to each request."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    bandwidth_bps: float | None = None  # bytes per second; None: unlimited
    max_in_flight: int | None = None  # more at once -> 503 SlowDown; None: no limit
    stop_after_gets: int | None = None  # the server goes away after serving this many GETs


class Link:
    """A shared link of fixed bandwidth: callers are served in order of arrival.

    Each transfer reserves the link from when it is free for ``nbytes / rate``
    seconds and blocks until its reservation ends, so the total rate of all
    callers together never exceeds ``rate`` (a token bucket with no burst).
    """

    def __init__(self, bytes_per_second: float) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bandwidth must be positive")
        self._rate = bytes_per_second
        self._lock = threading.Lock()
        self._free_at = 0.0

    def transmit(self, nbytes: int) -> None:
        with self._lock:
            start = max(time.monotonic(), self._free_at)
            self._free_at = start + nbytes / self._rate
            done = self._free_at
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class ConditionedApp:
    """WSGI middleware that puts latency, a bandwidth limit and throttling in front of ``app``."""

    def __init__(self, app: Any, conditions: Conditions, on_served: Any = None) -> None:
        self.app = app
        self.conditions = conditions
        self._link = Link(conditions.bandwidth_bps) if conditions.bandwidth_bps else None
        self._on_served = on_served  # called with the count of GETs served so far
        self._lock = threading.Lock()
        self._random = random.Random(0)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.served = 0
        self.gets_served = 0
        self.throttled = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            limit = self.conditions.max_in_flight
            admitted = limit is None or self.in_flight < limit
            if admitted:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            else:
                self.throttled += 1
        time.sleep(self.conditions.latency_s + self._random.uniform(0, self.conditions.jitter_s))
        if not admitted:
            return self._slow_down(environ, start_response)
        is_get = environ.get("REQUEST_METHOD") == "GET"
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._finished(is_get)
            raise
        return self._stream(result, is_get)

    def _slow_down(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request_id = uuid.uuid4().hex
        body = SLOW_DOWN_BODY.format(request_id=request_id).encode()
        start_response("503 Slow Down", [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _stream(self, result: Iterable[bytes], is_get: bool) -> Iterator[bytes]:
        """Yield the response body through the shared link; the request ends when it closes."""
        try:
            for data in result:
                if self._link is None:
                    yield data
                    continue
                for offset in range(0, len(data), CHUNK_BYTES):
                    chunk = data[offset:offset + CHUNK_BYTES]
                    self._link.transmit(len(chunk))
                    yield chunk
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            self._finished(is_get)

    def _finished(self, is_get: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            self.served += 1
            self.gets_served += is_get
            gets = self.gets_served
        if is_get and self._on_served is not None:
            self._on_served(gets)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (there are thousands); errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _TrackingServer(ThreadedWSGIServer):
    """werkzeug's threaded server, remembering open connections so stop() can drop them."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        super().__init__(host, port, app, handler=_QuietHandler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler


class S3Server:
    """moto's S3 behind :class:`ConditionedApp`, served on loopback from a background thread.

    ``port=0`` picks a free port; ``endpoint_url`` says which. Counters of the
    middleware (``served``, ``gets_served``, ``throttled``, ``in_flight``,
    ``peak_in_flight``) are on ``.middleware``.
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        bandwidth_bps: float | None = None,
        max_in_flight: int | None = None,
        stop_after_gets: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.conditions = Conditions(
            latency_s, jitter_s, bandwidth_bps, max_in_flight, stop_after_gets
        )
        self.middleware = ConditionedApp(
            DomainDispatcherApplication(create_backend_app), self.conditions, self._served
        )
        self._httpd = _TrackingServer(host, port, self.middleware)
        self._thread: threading.Thread | None = None
        self._stop_lock = threading.Lock()
        self.stopped = threading.Event()

    @property
    def endpoint_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> S3Server:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="s3-server", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go away: refuse new connections and cut the open ones. Safe to call twice."""
        with self._stop_lock:
            if self.stopped.is_set():
                return
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join()
            self._httpd.server_close()
            self._httpd.drop_connections()
            self.stopped.set()

    def _served(self, gets: int) -> None:
        limit = self.conditions.stop_after_gets
        if limit is not None and gets >= limit and not self.stopped.is_set():
            # Not from this handler thread: stop() cuts this very connection.
            threading.Thread(target=self.stop, daemon=True).start()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class S3ServerProcess:
    """The same server run by this file's CLI in a child process; ``stop()`` ends it.

    The child also stops when its standard input closes, so it never outlives
    this process, however that ends.
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        bandwidth_bps: float | None = None,
        max_in_flight: int | None = None,
        stop_after_gets: int | None = None,
        port: int = 0,
    ) -> None:
        self.command = [sys.executable, __file__, "--port", str(port), "--stop-on-stdin-eof",
                        "--latency", f"{latency_s}s", "--jitter", f"{jitter_s}s"]
        if bandwidth_bps is not None:
            self.command += ["--bandwidth", f"{bandwidth_bps}B/s"]
        if max_in_flight is not None:
            self.command += ["--max-in-flight", str(max_in_flight)]
        if stop_after_gets is not None:
            self.command += ["--stop-after", str(stop_after_gets)]
        self._process: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def start(self) -> S3ServerProcess:
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # the CLI's first line names the endpoint
        found = re.search(r"http://\S+", line)
        if found is None:
            self.stop()
            raise RuntimeError(f"the S3 server did not start: {line.strip() or 'no output'}")
        self.endpoint_url = found.group(0)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def __enter__(self) -> S3ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_duration(text: str) -> float:
    """'50ms', '0.05s' or '0.05' (seconds) -> seconds."""
    found = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(ms|s)?\s*", text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 50ms or 0.05s)")
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "ms" else value


def parse_bandwidth(text: str) -> float:
    """'50MB/s', '500kB/s' or '1e6B/s' (decimal units, bytes) -> bytes per second."""
    found = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgG]?)B/s\s*", text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not a bandwidth: {text!r} (try 50MB/s)")
    return float(found.group(1)) * _UNITS[found.group(2).lower()]


def describe(conditions: Conditions) -> str:
    parts = [f"latency {conditions.latency_s * 1000:g} ms"]
    if conditions.jitter_s:
        parts.append(f"jitter {conditions.jitter_s * 1000:g} ms")
    if conditions.bandwidth_bps:
        parts.append(f"bandwidth {conditions.bandwidth_bps / 1e6:g} MB/s")
    if conditions.max_in_flight is not None:
        parts.append(f"503 SlowDown above {conditions.max_in_flight} in flight")
    if conditions.stop_after_gets is not None:
        parts.append(f"goes away after {conditions.stop_after_gets} GETs")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--latency", type=parse_duration, default=0.0,
                        help="added to every request, e.g. 5ms or 50ms (default 0)")
    parser.add_argument("--jitter", type=parse_duration, default=0.0,
                        help="random extra latency, uniform in [0, JITTER]")
    parser.add_argument("--bandwidth", type=parse_bandwidth, default=None,
                        help="shared limit on response bytes, e.g. 50MB/s (default none)")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="answer 503 SlowDown to requests beyond this many in flight")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="go away after serving N GETs (fault injection; uploads do not count)")
    parser.add_argument("--stop-on-stdin-eof", action="store_true",
                        help="stop when standard input closes (to end with a parent process)")
    args = parser.parse_args(argv)
    server = S3Server(args.latency, args.jitter, args.bandwidth, args.max_in_flight,
                      args.stop_after, port=args.port).start()
    print(f"serving S3 at {server.endpoint_url} ({describe(server.conditions)}); "
          "Ctrl-C to stop", flush=True)
    if args.stop_on_stdin_eof:
        threading.Thread(target=lambda: (sys.stdin.read(), server.stop()), daemon=True).start()
    try:
        server.stopped.wait()
    except KeyboardInterrupt:
        server.stop()
        return 0
    if args.stop_after is not None and server.middleware.gets_served >= args.stop_after:
        print(f"S3 server went away after {server.middleware.gets_served} GETs (--stop-after)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
