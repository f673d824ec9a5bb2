"""How much of a script's iteration is profiled, and the signal that stops it.

Shared by every framework's hooks (tf.data, torch): the same ``--steps`` and
``--duration`` bounds apply whatever the script iterates.
"""

from __future__ import annotations

import _thread
import threading
from dataclasses import dataclass


@dataclass
class RunBounds:
    """Optional limits on how much of the script's iteration is profiled."""

    steps: int | None = None
    duration_s: float | None = None


class BoundReached(BaseException):  # noqa: N818 - it is a signal, not an error
    """Raised into the script to stop it once a step bound is reached.

    A BaseException so that a script's ``except Exception`` does not swallow it.
    """


class ScriptStopper:
    """Stops the profiled script once a bound is reached, from whichever thread noticed.

    In the main thread it raises :class:`BoundReached` into the script's own
    loop; from a poller thread it interrupts the main thread, once.
    """

    def __init__(self) -> None:
        self._interrupt_sent = False

    def stop(self, bound: str) -> None:
        if threading.current_thread() is threading.main_thread():
            raise BoundReached(bound)
        if not self._interrupt_sent:
            self._interrupt_sent = True
            _thread.interrupt_main()
