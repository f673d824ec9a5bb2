"""The hooks' polling thread (plumber.measure.poller): it ticks until stopped, then is gone."""

from __future__ import annotations

import threading

from plumber.measure.poller import Poller


def test_a_poller_ticks_on_its_named_thread_until_stopped():
    ticked = threading.Event()
    names: list[str] = []

    def tick() -> None:
        names.append(threading.current_thread().name)
        ticked.set()

    poller = Poller("plumber-test-poll", 0.01, tick)
    poller.start()
    assert ticked.wait(timeout=30)
    poller.stop()
    assert poller.stopped
    assert set(names) == {"plumber-test-poll"}
    assert "plumber-test-poll" not in {t.name for t in threading.enumerate()}
