"""Stops that reach the script from outside its loop are never lost."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from plumber.measure.runbounds import BoundReached, ScriptStopper, remembering_interrupts


def swallowed(raise_into_main) -> None:
    """Let an exception raised asynchronously into this thread be lost, as in a ``__del__``."""
    try:
        raise_into_main()
        for _ in range(1000):  # give the pending interrupt a bytecode to land on
            pass
    except (KeyboardInterrupt, BoundReached):
        pass


def test_a_bound_whose_interrupt_was_lost_is_raised_again_at_the_next_step():
    stopper = ScriptStopper()
    stopper.reraise_lost()  # nothing asked for yet: no stop
    poller = threading.Thread(target=stopper.stop, args=("duration",))
    swallowed(lambda: (poller.start(), poller.join()))
    with pytest.raises(BoundReached, match="duration"):
        stopper.reraise_lost()
    with pytest.raises(BoundReached):  # and at every step after, until the script ends
        stopper.reraise_lost()


def test_a_lost_ctrl_c_is_raised_again_once():
    stopper = ScriptStopper()
    with remembering_interrupts():
        swallowed(lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(KeyboardInterrupt):
            stopper.reraise_lost()
        stopper.reraise_lost()  # once: a script that catches it may go on
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_scripts_own_interrupt_handler_is_left_alone():
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, own)
    try:
        with remembering_interrupts():
            assert signal.getsignal(signal.SIGINT) is own
        assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)
