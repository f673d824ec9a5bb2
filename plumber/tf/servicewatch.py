"""Watch a tf.data service while a script reads from it: a service that is gone is an error.

tf.data service never ends a read whose service went away: with its
dispatcher or its only worker killed, the client logs and waits in
``GetNext`` for good (docs/data-service.md). A run would hang. While a
:class:`ServiceWatch` is active, a thread (named ``plumber-service-watch``)
checks every :data:`POLL_S`:

- the dispatcher: a TCP connection to its address; unreachable for
  ``grace_s`` is :class:`DispatcherGone`;
- the reads: a ``next()`` on an iterator over a pipeline that reads from
  the service (a ``distribute`` below it) that has waited ``stall_s`` for
  its element while the dispatcher answers is :class:`WorkersGone` (its
  workers died or stopped answering); other pipelines' reads may take as
  long as they take. Keras ``fit`` reads inside a compiled function that
  this cannot see; there only the dispatcher is watched.

Without an address (``plumber profile`` of a script that calls
``distribute`` itself) only the reads are watched: a read from any service
that waits ``stall_s`` is :class:`WorkersGone`, whatever went away.

The blocked ``GetNext`` cannot be interrupted from Python, so ``on_lost``
gets the error and decides how the process ends (``plumber run`` says so
and exits). Everything patched is restored on exit.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

#: Seconds between checks.
POLL_S = 1.0

#: Seconds one connection attempt to the dispatcher may take.
CONNECT_TIMEOUT_S = 2.0

#: Default seconds without the dispatcher, or waiting for one element, before a run is lost.
DEFAULT_TIMEOUT_S = 60.0


class ServiceLost(RuntimeError):
    """The tf.data service the run reads from is gone; ``str()`` is the one-line reason."""


class DispatcherGone(ServiceLost):
    """The dispatcher stopped answering."""


class WorkersGone(ServiceLost):
    """The dispatcher answers but no element came: the workers died or stopped answering."""


def host_port(service: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` (or ``HOST:PORT``) as a host and a port; ValueError if it is neither."""
    parts = urlsplit(service if "://" in service else f"grpc://{service}")
    if parts.scheme not in ("grpc", "grpc+loas") or not parts.hostname or parts.port is None:
        raise ValueError(f"not a tf.data service address (grpc://HOST:PORT): {service!r}")
    return parts.hostname, parts.port


def reachable(service: str, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the service's address opens."""
    host, port = host_port(service)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def reads_service(dataset: Any) -> bool:
    """Whether ``dataset`` or a dataset below it reads from a tf.data service."""
    pending, seen = [dataset], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if "DataService" in type(current).__name__:
            return True
        try:
            pending.extend(current._inputs())
        except Exception:  # noqa: BLE001 - a dataset class that cannot list its inputs
            continue
    return False


class ServiceWatch:
    """Context manager: calls ``on_lost(error)`` once when the service is gone (see module)."""

    def __init__(self, service: str | None, on_lost: Callable[[ServiceLost], None], *,
                 grace_s: float, stall_s: float) -> None:
        self.service = service
        self.on_lost = on_lost
        self.grace_s = grace_s
        self.stall_s = stall_s
        self._waiting: dict[int, float] = {}
        self._service_iterators: weakref.WeakKeyDictionary[Any, bool] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restore: tuple[Any, Any] | None = None

    def __enter__(self) -> ServiceWatch:
        from tensorflow.python.data.ops import iterator_ops

        owner = iterator_ops.OwnedIterator
        original = owner.__dict__["__next__"]
        watch = self

        def __next__(iterator: Any) -> Any:
            if not watch._reads_service(iterator):
                return original(iterator)
            key = threading.get_ident()
            with watch._lock:
                watch._waiting[key] = time.monotonic()
            try:
                return original(iterator)
            finally:
                with watch._lock:
                    watch._waiting.pop(key, None)

        self._restore = (owner, original)
        owner.__next__ = __next__
        self._thread = threading.Thread(target=self._run, name="plumber-service-watch",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._restore is not None:
            owner, original = self._restore
            owner.__next__ = original
            self._restore = None

    def _reads_service(self, iterator: Any) -> bool:
        """Whether the iterator's pipeline reads from a tf.data service (cached per iterator)."""
        try:
            return self._service_iterators[iterator]
        except KeyError:
            reads = reads_service(getattr(iterator, "_dataset", None))
            self._service_iterators[iterator] = reads
            return reads

    def longest_wait(self) -> float:
        """Seconds the longest ``next()`` in progress has waited (0 when none is)."""
        with self._lock:
            started = min(self._waiting.values(), default=None)
        return 0.0 if started is None else time.monotonic() - started

    def _run(self) -> None:
        gone_since: float | None = None
        while not self._stop.wait(POLL_S):
            now = time.monotonic()
            if self.service is None or reachable(self.service):
                gone_since = None
                waited = self.longest_wait()
                if waited >= self.stall_s:
                    self.on_lost(WorkersGone(self._stalled(waited)))
                    return
                continue
            gone_since = now if gone_since is None else gone_since
            if now - gone_since >= self.grace_s:
                self.on_lost(DispatcherGone(
                    f"the tf.data service dispatcher at {self.service} stopped answering "
                    f"({now - gone_since:.0f} s without a connection): its process ended or "
                    f"the network to it is down (tf.data service would wait for it for good)"))
                return

    def _stalled(self, waited: float) -> str:
        """The error of a service read that has waited ``waited`` seconds for its element."""
        if self.service is None:
            return (f"no element came from the tf.data service the script reads from for "
                    f"{waited:.0f} s: its dispatcher or its workers died or stopped answering "
                    f"(tf.data service would wait for them for good)")
        return (f"no element came from the tf.data service at {self.service} for "
                f"{waited:.0f} s while its dispatcher answered: its workers died or "
                f"stopped answering (tf.data service would wait for them for good)")
