"""``plumber.profile(dataset)``: profile a tf.data pipeline in this process.

The pipeline is iterated by plumber's own loop, which does nothing with the
elements: the consumer is as fast as possible, so the rate measured is the
most the pipeline can deliver on this machine. The loop runs under the same
instrumentation as ``plumber profile`` (tf.data hooks, resource sampler,
thread CPU), then the same CPU prefix probe and capacity probe run, so a
notebook profile reads exactly like a script's.

Every profile is bounded: by ``steps`` and/or ``duration`` when given, else
by :data:`DEFAULT_DURATION_S`, so an infinite (``repeat()``) dataset stops.
A dataset that ends first (a short or empty one) stops there. The result
says which happened.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plumber.notebook.result import ProfileResult
from plumber.scriptrun import EXIT_INTERRUPTED, ScriptOutcome
from plumber.session import SessionOptions, assemble, instrumented

#: How long a profile runs when neither ``steps`` nor ``duration`` is given.
DEFAULT_DURATION_S = 20.0

#: ``RunInfo.command[0]`` of a profile taken by :func:`profile`.
COMMAND = "plumber.profile"

CONSUMER_NOTE = (
    "the consumer is plumber's own loop, which takes elements as fast as possible: "
    "the rate measured is the most the pipeline delivers"
)

PREBUILT_NOTE = (
    "the dataset was built before plumber.profile() was called, so the source lines "
    "that built its stages are unknown: pass a function that builds it "
    "(plumber.profile(make_dataset)) or profile the cell that builds it with %%plumber"
)

_SUPPORTED = (
    "plumber.profile() takes a tf.data.Dataset or a function with no arguments "
    "that returns one"
)


@dataclass(frozen=True)
class Consumed:
    """How plumber's loop over the dataset ended."""

    elements: int
    seconds: float
    stopped_by: str | None  # "steps", "duration", or None when the data ended
    interrupted: bool = False


def profile(
    dataset: Any,
    steps: int | None = None,
    duration: float | None = None,
    cpu_probe: float = 2.0,
) -> ProfileResult:
    """Profile a tf.data pipeline and return its analysed profile.

    ``dataset`` is a ``tf.data.Dataset``, or a function with no arguments
    that builds one: built under plumber's hooks, its stages keep the source
    lines that built them. ``steps`` bounds the root elements (batches)
    taken, ``duration`` the seconds spent; with neither, the profile runs
    :data:`DEFAULT_DURATION_S` seconds or until the data ends. ``cpu_probe``
    is the time spent afterwards measuring each stage's CPU (0 disables it).

    Errors raised by the pipeline propagate (the hooks are removed first);
    Ctrl-C stops the loop and returns what was profiled, marked interrupted.
    Raises TypeError for anything but a tf.data dataset (a PyTorch
    DataLoader is not supported yet) and ValueError for a bad bound.
    """
    _check_bounds(steps, duration, cpu_probe)
    builder = _builder(dataset)
    limit_s = duration if duration is not None else (None if steps else DEFAULT_DURATION_S)
    # The loop below enforces the bounds itself; an infinite limit keeps the
    # hooks from imposing their own default bound on an infinite pipeline.
    options = SessionOptions(duration_s=math.inf, cpu_probe_s=cpu_probe)
    with instrumented(options) as capture:
        built = _dataset_of(builder())
        infinite = _is_infinite(built)
        consumed = _consume(built, steps, limit_s)
    notes = capture.notes
    notes += _run_notes(consumed, steps, duration, limit_s, infinite)
    if builder is not dataset:
        notes.append(PREBUILT_NOTE)
    command = [COMMAND] + [
        f"{name}={value:g}" for name, value in (("steps", steps), ("duration", limit_s))
        if value is not None
    ]
    outcome = ScriptOutcome(
        exit_status=EXIT_INTERRUPTED if consumed.interrupted else 0,
        error="interrupted (Ctrl-C)" if consumed.interrupted else None,
        interrupted=consumed.interrupted,
        bounded=consumed.stopped_by is not None,
    )
    record = assemble(
        capture, command, outcome, options, bounded_by=consumed.stopped_by,
        subject="plumber.profile()",
    )
    return ProfileResult(record)


def _check_bounds(steps: int | None, duration: float | None, cpu_probe: float) -> None:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if duration is not None and not (isinstance(duration, (int, float)) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if not (isinstance(cpu_probe, (int, float)) and cpu_probe >= 0):
        raise ValueError(f"cpu_probe must be zero or a positive number, got {cpu_probe!r}")


def _builder(obj: Any) -> Callable[[], Any]:
    """A function returning the dataset to profile; TypeError for what is unsupported."""
    kind = _framework_object(obj)
    if kind == "tf.data.Dataset":
        return lambda: obj
    if kind is not None:
        raise TypeError(f"{_SUPPORTED}, not a {kind}")
    if callable(obj) and not isinstance(obj, type):
        return obj
    raise TypeError(f"{_SUPPORTED}, not {type(obj).__module__}.{type(obj).__qualname__}")


def _dataset_of(built: Any) -> Any:
    if _framework_object(built) != "tf.data.Dataset":
        raise TypeError(
            f"{_SUPPORTED}; the function returned "
            f"{type(built).__module__}.{type(built).__qualname__}"
        )
    return built


def _framework_object(obj: Any) -> str | None:
    """What framework object ``obj`` is, judged without importing any framework."""
    if "tensorflow" in sys.modules:
        from tensorflow.python.data.ops import dataset_ops, iterator_ops

        if isinstance(obj, dataset_ops.DatasetV2):
            return "tf.data.Dataset"
        if isinstance(obj, iterator_ops.OwnedIterator):
            return "tf.data iterator (pass the dataset it iterates)"
    root, name = type(obj).__module__.partition(".")[0], type(obj).__name__
    if root == "torch":
        if name == "DataLoader":
            return "PyTorch DataLoader (PyTorch support is planned, not there yet)"
        return f"PyTorch {name} (PyTorch is not supported yet)"
    if root in ("tensorflow", "keras"):
        return f"TensorFlow {name}"
    return None


def _is_infinite(dataset: Any) -> bool:
    import tensorflow as tf

    return int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY)


def _consume(dataset: Any, steps: int | None, limit_s: float | None) -> Consumed:
    """Take elements as fast as possible until a bound, the end of data or Ctrl-C."""
    start = time.monotonic()
    deadline = start + limit_s if limit_s is not None else math.inf
    elements, stopped_by, interrupted = 0, None, False
    iterator = iter(dataset)
    try:
        while True:
            if steps is not None and elements >= steps:
                stopped_by = "steps"
                break
            if time.monotonic() >= deadline:
                stopped_by = "duration"
                break
            try:
                next(iterator)
            except StopIteration:
                break
            elements += 1
    except KeyboardInterrupt:
        interrupted = True
    # Dropping the iterator here, with the hooks still installed, lets them
    # take its final counters.
    del iterator
    return Consumed(elements, time.monotonic() - start, stopped_by, interrupted)


def _run_notes(
    consumed: Consumed,
    steps: int | None,
    duration: float | None,
    limit_s: float | None,
    infinite: bool,
) -> list[str]:
    """What the profile should say about how the loop ended."""
    notes = [CONSUMER_NOTE]
    taken = f"{consumed.elements} elements in {consumed.seconds:.1f} s"
    if consumed.interrupted:
        notes.append(f"interrupted (Ctrl-C) after {taken}")
    elif consumed.stopped_by == "steps":
        notes.append(f"stopped at the bound of steps={steps} ({taken})")
    elif consumed.stopped_by == "duration":
        if duration is None:
            what = "the dataset is infinite (repeat()), so it" if infinite else "it"
            notes.append(
                f"{what} was profiled for plumber.profile()'s default {limit_s:g} s "
                f"({taken}): pass steps= or duration= to choose"
            )
        else:
            notes.append(f"stopped at the bound of duration={duration:g} s ({taken})")
    elif consumed.elements == 0:
        notes.append(
            "the dataset is empty (or exhausted): it ended before its first element, "
            "so there is nothing to profile"
        )
    else:
        notes.append(f"the dataset ended after {taken}, before any bound")
    return notes
