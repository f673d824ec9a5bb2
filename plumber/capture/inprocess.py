"""A tf.data pipeline or a DataLoader profiled in this process (``plumber.profile``).

The pipeline is iterated by plumber's own loop, which does nothing with the
elements: the consumer is as fast as possible, so the rate measured is the
most the pipeline can deliver on this machine. The loop runs under the same
instrumentation as ``plumber profile`` (tf.data and DataLoader hooks,
resource sampler, thread CPU), then the same CPU prefix probe (tf.data only)
and capacity probe run, so a notebook profile reads exactly like a script's.

A torch ``DataLoader`` built before the call has no construction site the
hooks saw: its stages are named by the line that called ``plumber.profile``
(or ``plumber.optimize``), which is where a plan for it is then matched.

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

from plumber.capture.scriptrun import EXIT_INTERRUPTED, ScriptOutcome
from plumber.capture.session import SessionOptions, assemble, instrumented
from plumber.measure.callsite import user_callsite
from plumber.measure.hotspots import DEFAULT_RATE_HZ, checked_rate_hz
from plumber.measure.runbounds import checked_cpu_probe, checked_duration, checked_steps
from plumber.records.profile import Profile, SourceLocation
from plumber.records.units import link_rate_bps
from plumber.torch import is_loader

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

LOADER_NOTE = (
    "the DataLoader was built before plumber.profile() was called, so the line that built "
    "it is unknown: its stages are named by the line that called plumber ({site})"
)

_SUPPORTED = (
    "plumber.profile() takes a tf.data.Dataset, a torch DataLoader, or a function with "
    "no arguments that returns one"
)


@dataclass(frozen=True)
class Consumed:
    """How plumber's loop over the dataset ended."""

    elements: int
    seconds: float
    stopped_by: str | None  # "steps", "duration", or None when the data ended
    interrupted: bool = False


def profile_pipeline(
    dataset: Any,
    steps: int | None = None,
    duration: float | None = None,
    cpu_probe: float = 2.0,
    hotspots: bool | int = False,
    link_bandwidth: str | None = None,
) -> Profile:
    """The Profile of ``dataset`` iterated by plumber's own loop.

    The arguments, bounds and errors are those of :func:`plumber.profile`
    (:mod:`plumber.notebook.run`), which wraps the record with its analysis
    (``hotspots`` samples the Python stacks with py-spy meanwhile, True at
    the default rate, a number at that many samples per second);
    ``plumber.optimize`` profiles through here too.
    """
    _check_bounds(steps, duration, cpu_probe)
    rate_hz = _hotspots_rate(hotspots)
    link_bps = _link_bps(link_bandwidth)
    builder = _builder(dataset)
    caller = user_callsite() if builder is not dataset else None
    limit_s = duration if duration is not None else (None if steps else DEFAULT_DURATION_S)
    # The loop below enforces the bounds itself; an infinite limit keeps the
    # hooks from imposing their own default bound on an infinite pipeline.
    options = SessionOptions(duration_s=math.inf, cpu_probe_s=cpu_probe,
                             hotspots=rate_hz is not None,
                             hotspots_rate_hz=rate_hz or DEFAULT_RATE_HZ, link_bps=link_bps)
    with instrumented(options) as capture:
        built = _dataset_of(builder())
        loader = is_loader(built)
        named = loader and builder is not dataset and _name_loader(capture, built, caller)
        infinite = not loader and _is_infinite(built)
        consumed = _consume(built, steps, limit_s)
    notes = capture.notes
    notes += _run_notes(consumed, steps, duration, limit_s, infinite)
    if named:
        notes.append(LOADER_NOTE.format(site=f"{caller.file}:{caller.line}"))
    elif builder is not dataset and not loader:
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
    return assemble(
        capture, command, outcome, options, bounded_by=consumed.stopped_by,
        subject="plumber.profile()",
    )


def _check_bounds(steps: int | None, duration: float | None, cpu_probe: float) -> None:
    """ValueError naming the argument and its value when a bound is not one (see runbounds)."""
    checks = (("steps", steps, checked_steps), ("duration", duration, checked_duration),
              ("cpu_probe", cpu_probe, checked_cpu_probe))
    for name, value, check in checks:
        if value is None and name != "cpu_probe":
            continue
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"{name} {exc}, got {value!r}") from None


def _link_bps(link_bandwidth: str | None) -> float | None:
    """``link_bandwidth`` in bytes/s (see ``units.link_rate_bps``); None if not given.

    TypeError for anything but a string such as ``"10Gb/s"``: a bare number
    would leave bits or bytes to a guess.
    """
    if link_bandwidth is None:
        return None
    if not isinstance(link_bandwidth, str):
        raise TypeError(
            f"link_bandwidth is a rate with its unit, such as '10Gb/s', not "
            f"{link_bandwidth!r}"
        )
    try:
        return link_rate_bps(link_bandwidth)
    except ValueError as exc:
        raise ValueError(f"link_bandwidth: {exc}") from None


def _hotspots_rate(hotspots: bool | int) -> int | None:
    """The sampling rate ``hotspots`` asks for (True: the default), None for no sampling."""
    if hotspots is False or hotspots is None:
        return None
    if hotspots is True:
        return DEFAULT_RATE_HZ
    try:
        return checked_rate_hz(hotspots)
    except ValueError as exc:
        raise ValueError(f"hotspots is True, False or a rate that {exc}, got {hotspots!r}") \
            from None


def _builder(obj: Any) -> Callable[[], Any]:
    """A function returning the dataset to profile; TypeError for what is unsupported."""
    kind = _framework_object(obj)
    if kind in _PROFILED:
        return lambda: obj
    if kind is not None:
        raise TypeError(f"{_SUPPORTED}, not a {kind}")
    if callable(obj) and not isinstance(obj, type):
        return obj
    raise TypeError(f"{_SUPPORTED}, not {type(obj).__module__}.{type(obj).__qualname__}")


def _dataset_of(built: Any) -> Any:
    if _framework_object(built) not in _PROFILED:
        raise TypeError(
            f"{_SUPPORTED}; the function returned "
            f"{type(built).__module__}.{type(built).__qualname__}"
        )
    return built


#: What :func:`_framework_object` names the objects plumber's loop iterates.
_PROFILED = ("tf.data.Dataset", "torch DataLoader")


def _framework_object(obj: Any) -> str | None:
    """What framework object ``obj`` is, judged without importing any framework."""
    if is_loader(obj):
        return "torch DataLoader"
    if "tensorflow" in sys.modules:
        from tensorflow.python.data.ops import dataset_ops, iterator_ops

        if isinstance(obj, dataset_ops.DatasetV2):
            return "tf.data.Dataset"
        if isinstance(obj, iterator_ops.OwnedIterator):
            return "tf.data iterator (pass the dataset it iterates)"
    root, name = type(obj).__module__.partition(".")[0], type(obj).__name__
    if root in ("torch", "torchvision"):
        if name == "DataLoader":
            return "PyTorch DataLoader look-alike (pass a torch.utils.data.DataLoader)"
        return f"PyTorch {name} (pass the DataLoader that iterates it)"
    if root in ("tensorflow", "keras"):
        return f"TensorFlow {name}"
    return None


def _name_loader(capture: Any, loader: Any, caller: SourceLocation | None) -> bool:
    """Give a DataLoader built before profiling the caller's line as its source.

    The hooks record a loader's source when it is constructed; this one was
    constructed before they were installed, so the line that called plumber
    stands for it (an ``optimize(loader)`` plan matches the single loader
    pipeline whatever its line). Returns whether the loader was named.
    """
    torch_hooks = capture.hooks.torch if capture.hooks is not None else None
    if caller is None or torch_hooks is None:
        return False
    return torch_hooks.name_loader(loader, caller)


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
