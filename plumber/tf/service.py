"""A tf.data service on this machine: a dispatcher and workers, started and stopped together.

``plumber service start`` runs one for a trial on one machine (dispatcher
and workers here) or, with a dispatcher address, only workers that join a
dispatcher on another host. Workers advertise ``host`` to the clients
(tf.data service's default is ``localhost``, which only a client on the same
machine can reach). The dispatcher drops a worker that missed its
heartbeats for :data:`WORKER_TIMEOUT_MS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Milliseconds without a heartbeat after which the dispatcher drops a worker.
WORKER_TIMEOUT_MS = 10_000

#: Milliseconds between a worker's heartbeats to the dispatcher.
HEARTBEAT_MS = 1_000


@dataclass
class LocalService:
    """The servers started here; :meth:`stop` ends the workers, then the dispatcher."""

    dispatcher_address: str
    dispatcher: Any = None
    workers: list[Any] = field(default_factory=list)

    @property
    def target(self) -> str:
        """The address clients pass to ``distribute`` and ``--data-service``."""
        return f"grpc://{self.dispatcher_address}"

    def worker_addresses(self) -> list[str]:
        return [worker._address for worker in self.workers]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()


def start_service(workers: int, port: int, dispatcher: str | None, host: str) -> LocalService:
    """Start a dispatcher on ``port`` (0: any free one) unless ``dispatcher`` names one, and
    ``workers`` workers advertised as ``host``. Raises ``RuntimeError`` when a server fails."""
    import tensorflow as tf

    service = tf.data.experimental.service
    started = LocalService(dispatcher_address=dispatcher or "")
    try:
        if dispatcher is None:
            started.dispatcher = service.DispatchServer(service.DispatcherConfig(
                port=port, worker_timeout_ms=WORKER_TIMEOUT_MS))
            started.dispatcher_address = f"{host}:{started.dispatcher._address.split(':')[-1]}"
        for _ in range(workers):
            started.workers.append(service.WorkerServer(service.WorkerConfig(
                dispatcher_address=started.dispatcher_address, worker_address=f"{host}:%port%",
                heartbeat_interval_ms=HEARTBEAT_MS)))
    except Exception as exc:  # noqa: BLE001 - TF raises its own error types for a port in use
        started.stop()
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuntimeError(f"cannot start the tf.data service: {first}") from None
    return started
