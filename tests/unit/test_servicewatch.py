"""The tf.data service watch: a dispatcher that stops answering is reported once, and nothing
stays patched afterwards. A listening socket stands in for the dispatcher."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from plumber.tf import servicewatch
from plumber.tf.servicewatch import DispatcherGone, ServiceWatch, WorkersGone

tf = pytest.importorskip("tensorflow")


@pytest.fixture
def fast_polls(monkeypatch):
    monkeypatch.setattr(servicewatch, "POLL_S", 0.05)


def listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_dispatcher_that_stops_listening_is_reported_once(fast_polls):
    server = listening()
    address = f"grpc://127.0.0.1:{server.getsockname()[1]}"
    lost: list[Exception] = []
    reported = threading.Event()

    def on_lost(error: Exception) -> None:
        lost.append(error)
        reported.set()

    with ServiceWatch(address, on_lost, grace_s=0.2, stall_s=3600):
        assert not reported.wait(0.3)  # answering: nothing to report
        server.close()
        assert reported.wait(30)
    assert len(lost) == 1 and isinstance(lost[0], DispatcherGone)
    assert f"dispatcher at {address} stopped answering" in str(lost[0])


def slow(elements: int) -> object:
    """A pipeline whose every element takes 1 s (the py_function runs in this process)."""
    return tf.data.Dataset.range(elements).map(
        lambda x: tf.py_function(lambda v: time.sleep(1) or v, [x], tf.int64))


@pytest.mark.parametrize("watched, message", [
    ("dispatcher", "its workers died or stopped answering"),
    (None, "the tf.data service the script reads from"),
])
def test_a_service_read_that_waits_too_long_while_the_dispatcher_answers_is_reported(
        fast_polls, watched, message):
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    worker = service.WorkerServer(service.WorkerConfig(
        dispatcher_address=dispatcher.target.removeprefix("grpc://")))
    lost: list[Exception] = []
    distributed = slow(2).apply(service.distribute("parallel_epochs", dispatcher.target))
    address = dispatcher.target if watched else None
    with ServiceWatch(address, lost.append, grace_s=60, stall_s=0.3):
        assert [int(v) for v in slow(1)] == [0]  # not read from a service: not watched
        assert lost == []
        assert sorted(int(v) for v in distributed) == [0, 1]
    worker.stop()
    dispatcher.stop()
    assert lost and isinstance(lost[0], WorkersGone)
    assert message in str(lost[0])


def test_a_compiled_call_given_an_iterator_over_a_slow_service_is_reported(fast_polls):
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    worker = service.WorkerServer(service.WorkerConfig(
        dispatcher_address=dispatcher.target.removeprefix("grpc://")))
    lost: list[Exception] = []

    @tf.function
    def step(iterator):  # as Keras fit, and TF's model code, read: inside the function
        return iterator.get_next()

    distributed = slow(2).apply(service.distribute("parallel_epochs", dispatcher.target))
    with ServiceWatch(dispatcher.target, lost.append, grace_s=60, stall_s=0.3):
        assert int(step(iter(slow(1)))) == 0  # not read from a service: not watched
        assert lost == []
        iterator = iter(distributed)
        assert {int(step(iterator)), int(step(iterator))} == {0, 1}
        with pytest.raises(tf.errors.OutOfRangeError):  # read to its end: the job is done
            step(iterator)
    worker.stop()
    dispatcher.stop()
    assert lost and isinstance(lost[0], WorkersGone)
    assert "its workers died or stopped answering" in str(lost[0])
    assert "read inside a compiled function" in str(lost[0])


def test_a_slow_read_of_a_pipeline_without_the_service_is_not_reported(fast_polls):
    server = listening()
    lost: list[Exception] = []
    with ServiceWatch(f"grpc://127.0.0.1:{server.getsockname()[1]}", lost.append,
                      grace_s=60, stall_s=0.3):
        assert [int(v) for v in slow(1)] == [0]
    server.close()
    assert lost == []


def test_nothing_stays_patched_and_no_thread_is_left(fast_polls):
    from tensorflow.python.data.ops import iterator_ops
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    original = iterator_ops.OwnedIterator.__dict__["__next__"]
    original_call = polymorphic_function.Function.__dict__["__call__"]
    server = listening()
    with ServiceWatch(f"grpc://127.0.0.1:{server.getsockname()[1]}", lambda e: None,
                      grace_s=60, stall_s=3600) as watch:
        assert iterator_ops.OwnedIterator.__dict__["__next__"] is not original
        assert [x for x in tf.data.Dataset.range(3).as_numpy_iterator()] == [0, 1, 2]
        assert watch.longest_wait() == (0.0, None)
    server.close()
    assert iterator_ops.OwnedIterator.__dict__["__next__"] is original
    assert polymorphic_function.Function.__dict__["__call__"] is original_call
    assert not [t for t in threading.enumerate() if t.name == "plumber-service-watch"]
