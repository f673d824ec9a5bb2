"""How much of a script's iteration is profiled, and the signals that stop it.

The bounds' values are checked here, once, for the command line, the
notebook's cell magic and ``plumber.profile``.

Shared by every framework's hooks (tf.data, torch): the same ``--steps`` and
``--duration`` bounds apply whatever the script iterates. Ctrl-C, SIGTERM and
SIGHUP (a cancelled CI job, ``timeout``) stop the script the same way, so the
profile of what ran is still written.
"""

from __future__ import annotations

import _thread
import contextlib
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class RunBounds:
    """Optional limits on how much of the script's iteration is profiled."""

    steps: int | None = None
    duration_s: float | None = None


def checked_steps(value: object) -> int:
    """A ``steps`` bound: an integer above 0 (not a bool); ValueError saying what it must be."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a positive integer")
    return value


def checked_duration(value: object) -> float:
    """A ``duration`` bound in seconds: a finite number above 0; ValueError if not."""
    if not (_is_number(value) and 0 < value < math.inf):
        raise ValueError("must be a positive finite number")
    return float(value)


def checked_cpu_probe(value: object) -> float:
    """Seconds of the per-stage CPU probe after the run: 0 (none) or a finite number above.

    ``inf`` is refused: the probe measured an endless stage forever after the
    run, and the profile was never written.
    """
    if not (_is_number(value) and 0 <= value < math.inf):
        raise ValueError("must be zero or a positive finite number")
    return float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class BoundReached(BaseException):  # noqa: N818 - it is a signal, not an error
    """Raised into the script to stop it once a step bound is reached.

    A BaseException so that a script's ``except Exception`` does not swallow it.
    """


class Terminated(BaseException):  # noqa: N818 - it is a signal, not an error
    """Raised into the script when plumber's process gets SIGTERM or SIGHUP.

    A BaseException, as KeyboardInterrupt is, so that a script's ``except
    Exception`` does not swallow it; its ``finally`` blocks still run.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


#: Signals that end a run from outside (besides Ctrl-C), handled like Ctrl-C.
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


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
    bound is raised again there, and so, once, is a Ctrl-C, SIGTERM or
    SIGHUP that :func:`remembering_interrupts` saw.
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
        if self.bound is None and _INTERRUPT.pending is None:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        if self.bound is not None:
            raise BoundReached(self.bound)
        signum, _INTERRUPT.pending = _INTERRUPT.pending, None
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)


class _Interrupt:
    """The signal (Ctrl-C, SIGTERM, SIGHUP) received while the script may not have stopped."""

    pending: int | None = None
    #: Plumber's termination handlers in place: signal -> the handler they replaced.
    replaced: dict[int, Any] = {}


_INTERRUPT = _Interrupt()


@contextlib.contextmanager
def remembering_interrupts() -> Iterator[None]:
    """While active (in the main thread), a Ctrl-C, SIGTERM or SIGHUP stops the script.

    Ctrl-C raises KeyboardInterrupt as Python's own handler does; SIGTERM and
    SIGHUP raise :class:`Terminated`; each is remembered too, so a stop lost
    in a ``__del__`` is raised again. Only default handlers are replaced: a
    script's or host's own handler, or a signal ignored by the parent
    (``nohup``), is left alone. The previous handlers are put back on exit.
    """
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main:
        yield
        return
    replaced: dict[int, Any] = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        replaced[signal.SIGINT] = signal.signal(signal.SIGINT, _remember_interrupt)
    for signum in TERMINATING_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            replaced[signum] = signal.signal(signum, _terminate)
    _INTERRUPT.replaced = {s: h for s, h in replaced.items() if s != signal.SIGINT}
    try:
        yield
    finally:
        _INTERRUPT.replaced = {}
        for signum, previous in replaced.items():
            signal.signal(signum, previous)
        _INTERRUPT.pending = None


class StoppableSteps:
    """The steps after the script (its probes) that Ctrl-C, SIGTERM or SIGHUP cut short.

    Once the script has ended, plumber still runs probes (per-stage CPU,
    disk, network) before it writes the profile. A stop during one of them
    should not lose the profile: :meth:`run` then takes the step's fallback
    (the same step without its probe), as does every later step, and
    :attr:`stop_signal` says which signal came, so the command can exit as
    it would had the signal stopped the script. A second signal, after the
    first, ends plumber as the signal's default does.
    """

    def __init__(self) -> None:
        #: The signal that stopped the steps (SIGINT for Ctrl-C), once one did.
        self.stop_signal: int | None = None

    def run(self, step: Callable[[], T], fallback: Callable[[], T]) -> T:
        """``step()``, or ``fallback()`` when a stop came before or during it."""
        if self.stop_signal is None:
            try:
                with remembering_interrupts():
                    return step()
            except KeyboardInterrupt:
                self.stop_signal = signal.SIGINT
            except Terminated as stop:
                self.stop_signal = stop.signum
        return fallback()


def _remember_interrupt(signum: int, frame: Any) -> None:
    _INTERRUPT.pending = signum
    signal.default_int_handler(signum, frame)


def _terminate(signum: int, frame: Any) -> None:
    _INTERRUPT.pending = signum
    raise Terminated(signum)


def _default_termination_in_child() -> None:
    """A forked child (a DataLoader worker, the script's own ``os.fork()``) dies of
    SIGTERM/SIGHUP as it would without plumber, instead of inheriting its handler."""
    for signum, previous in _INTERRUPT.replaced.items():
        with contextlib.suppress(ValueError):  # not the child's main thread: nothing to undo
            signal.signal(signum, previous)
    _INTERRUPT.replaced = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_termination_in_child)
