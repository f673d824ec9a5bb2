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
  long as they take;
- the compiled calls: Keras ``fit`` (and a custom loop's step given the
  iterator, as TF's model code writes it) read inside a ``tf.function``
  that Python does not see read. A call of one whose arguments hold such an
  iterator, and that has run ``stall_s``, is :class:`WorkersGone` too; its
  message says that one call taking that long would read the same.

Without an address (``plumber profile`` of a script that calls
``distribute`` itself) the dispatcher is not watched: a read (or compiled
call) of any service that waits ``stall_s`` is :class:`WorkersGone`,
whatever went away.

The blocked ``GetNext`` cannot be interrupted from Python, so ``on_lost``
gets the error and decides how the process ends (``plumber run`` says so
and exits). Everything patched is restored on exit.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
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
        self._waiting: dict[int, tuple[float, str]] = {}
        self._tokens = itertools.count()
        self._service_iterators: weakref.WeakKeyDictionary[Any, bool] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restore: tuple[tuple[Any, str, Any], ...] | None = None

    def __enter__(self) -> ServiceWatch:
        from tensorflow.python.data.ops import iterator_ops
        from tensorflow.python.eager.polymorphic_function import polymorphic_function

        owned = iterator_ops.OwnedIterator
        compiled = polymorphic_function.Function
        original_next = owned.__dict__["__next__"]
        original_call = compiled.__dict__["__call__"]
        watch = self

        def __next__(iterator: Any) -> Any:
            if not watch._reads_service(iterator):
                return original_next(iterator)
            with watch._waiting_for("read"):
                return original_next(iterator)

        def __call__(function: Any, *args: Any, **kwargs: Any) -> Any:
            if not any(isinstance(value, owned) and watch._reads_service(value)
                       for value in (*args, *kwargs.values())):
                return original_call(function, *args, **kwargs)
            with watch._waiting_for("call"):
                return original_call(function, *args, **kwargs)

        self._restore = ((owned, "__next__", original_next),
                         (compiled, "__call__", original_call))
        owned.__next__ = __next__
        compiled.__call__ = __call__
        self._thread = threading.Thread(target=self._run, name="plumber-service-watch",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for owner, name, original in self._restore or ():
            setattr(owner, name, original)
        self._restore = None

    @contextlib.contextmanager
    def _waiting_for(self, what: str) -> Iterator[None]:
        """While the block runs, it is a ``what`` ("read" or "call") waiting on the service."""
        token = next(self._tokens)
        with self._lock:
            self._waiting[token] = (time.monotonic(), what)
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(token, None)

    def _reads_service(self, iterator: Any) -> bool:
        """Whether the iterator's pipeline reads from a tf.data service (cached per iterator)."""
        try:
            return self._service_iterators[iterator]
        except KeyError:
            reads = reads_service(getattr(iterator, "_dataset", None))
            self._service_iterators[iterator] = reads
            return reads

    def longest_wait(self) -> tuple[float, str | None]:
        """Seconds the longest read or compiled call in progress has waited, and which it is
        ("read" or "call"); ``(0.0, None)`` when none is."""
        with self._lock:
            started, what = min(self._waiting.values(), default=(None, None))
        return (0.0 if started is None else time.monotonic() - started), what

    def _run(self) -> None:
        gone_since: float | None = None
        while not self._stop.wait(POLL_S):
            now = time.monotonic()
            if self.service is None or reachable(self.service):
                gone_since = None
                waited, what = self.longest_wait()
                if waited >= self.stall_s:
                    self.on_lost(WorkersGone(self._stalled(waited, what)))
                    return
                continue
            gone_since = now if gone_since is None else gone_since
            if now - gone_since >= self.grace_s:
                self.on_lost(DispatcherGone(
                    f"the tf.data service dispatcher at {self.service} stopped answering "
                    f"({now - gone_since:.0f} s without a connection): its process ended or "
                    f"the network to it is down (tf.data service would wait for it for good)"))
                return

    def _stalled(self, waited: float, what: str | None) -> str:
        """The error of a read (or compiled call) that has waited ``waited`` seconds."""
        if self.service is None:
            text = (f"no element came from the tf.data service the script reads from for "
                    f"{waited:.0f} s: its dispatcher or its workers died or stopped answering")
        else:
            text = (f"no element came from the tf.data service at {self.service} for "
                    f"{waited:.0f} s while its dispatcher answered: its workers died or "
                    f"stopped answering")
        text += " (tf.data service would wait for them for good)"
        if what == "call":
            text += (f"; read inside a compiled function (Keras fit, or a step given the "
                     f"iterator), so one call that computes for {waited:.0f} s would read "
                     f"the same")
        return text
