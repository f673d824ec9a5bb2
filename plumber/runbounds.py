"""How much of a script's iteration is profiled, and the signal that stops it.

Shared by every framework's hooks (tf.data, torch): the same ``--steps`` and
``--duration`` bounds apply whatever the script iterates.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


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

    An exception raised into the main thread from outside (that interrupt, or
    the user's Ctrl-C) is lost when it lands in a ``__del__``: Python prints
    "Exception ignored" and the script goes on, forever for an endless
    pipeline (TensorFlow's eager executors wait in their ``__del__``). And
    that interrupt does nothing at all in a process that ignores SIGINT (a
    background job of a non-interactive shell). So the hooks call
    :meth:`reraise_lost` at every step of the loop: a reached
    bound is raised again there, and so, once, is a Ctrl-C that
    :func:`remembering_interrupts` saw.
    """

    def __init__(self) -> None:
        self._interrupt_sent = False
        #: The bound that stopped the script (``steps``, ``duration``), once one did.
        self.bound: str | None = None

    def stop(self, bound: str) -> None:
        self.bound = bound
        if threading.current_thread() is threading.main_thread():
            raise BoundReached(bound)
        if not self._interrupt_sent:
            self._interrupt_sent = True
            _thread.interrupt_main()

    def reraise_lost(self) -> None:
        """In the main thread, raise a stop that was asked for and may have been lost."""
        if self.bound is None and not _INTERRUPT.pending:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        if self.bound is not None:
            raise BoundReached(self.bound)
        _INTERRUPT.pending = False
        raise KeyboardInterrupt


class _Interrupt:
    """Whether the user pressed Ctrl-C and the script may not have stopped yet."""

    pending = False


_INTERRUPT = _Interrupt()


@contextlib.contextmanager
def remembering_interrupts() -> Iterator[None]:
    """While active (in the main thread), a Ctrl-C is remembered as well as raised.

    Only Python's default handler is replaced (a script's own is left alone),
    and it is put back on exit.
    """
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def remember(signum: int, frame: Any) -> None:
        _INTERRUPT.pending = True
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _INTERRUPT.pending = False
