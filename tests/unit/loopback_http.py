"""A real HTTP server on loopback for the network tracer and probe tests.

``GET /bytes/<n>`` answers ``n`` bytes after ``delay_s`` (or ``?delay_ms=``;
``HEAD`` only declares them); ``?body_delay_ms=`` pauses between the headers
and the body. ``GET /refuse`` answers 503 SlowDown, as S3 does when
throttling, and so does any request beyond ``max_in_flight`` at once. With
``hold`` set, each request waits until that many are in flight together (so a
test knows they overlapped). With ``require_header`` set, a request lacking
that header gets 403. With ``one_at_a_time`` set, requests take their delay
in turn, as on a server that serves them as fast as it can: with k in
flight each takes about k delays.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SLOWDOWN = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # 16 connecting at once must not overflow the backlog

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up mid-body (the probe cutting a read short) are expected."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Context manager serving on an ephemeral port of 127.0.0.1 in a thread."""

    def __init__(
        self,
        delay_s: float = 0.0,
        max_in_flight: int | None = None,
        hold: int | None = None,
        require_header: tuple[str, str] | None = None,
        one_at_a_time: bool = False,
    ) -> None:
        self.delay_s = delay_s
        self.serving = threading.Lock() if one_at_a_time else contextlib.nullcontext()
        self.max_in_flight = max_in_flight
        self.barrier = threading.Barrier(hold) if hold else None
        self.require_header = require_header
        self.lock = threading.Lock()
        self.in_flight = 0
        self.requests = 0
        self.arrived = threading.Event()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.port = self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> LoopbackServer:
        serve = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        serve.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as object stores do
        disable_nagle_algorithm = True  # headers and body go in two writes

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            with server.lock:
                server.in_flight += 1
                server.requests += 1
                over = server.max_in_flight is not None and server.in_flight > server.max_in_flight
            server.arrived.set()
            try:
                self._answer(over)
            finally:
                with server.lock:
                    server.in_flight -= 1

        def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
            size = self.path.rsplit("/", 1)[-1]
            self.send_response(200)
            self.send_header("Content-Length", size if size.isdigit() else "0")
            self.end_headers()

        def _answer(self, over: bool) -> None:
            parts = urlsplit(self.path)
            query = {k: float(v[0]) for k, v in parse_qs(parts.query).items() if k.endswith("_ms")}
            if server.require_header:
                name, value = server.require_header
                if self.headers.get(name) != value:
                    return self._send(403, b"forbidden")
            if over or parts.path == "/refuse":
                return self._send(503, SLOWDOWN)
            if server.barrier is not None:
                server.barrier.wait(timeout=10)
            with server.serving:
                time.sleep(query.get("delay_ms", server.delay_s * 1000) / 1000)
            size = int(parts.path.rsplit("/", 1)[-1]) if parts.path.startswith("/bytes/") else 0
            self._send(200, b"x" * size, query.get("body_delay_ms", 0) / 1000)

        def _send(self, status: int, body: bytes, body_delay_s: float = 0.0) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            time.sleep(body_delay_s)
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


def closed_port() -> int:
    """A loopback port nothing listens on (connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
