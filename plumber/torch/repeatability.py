"""Whether a dataset's fetch and each of its transforms give the same output again.

The static classification (:mod:`plumber.torch.determinism`) cannot prove
a user's code deterministic; this check runs it. In the user's process,
before the loader's workers start, it reads :data:`SAMPLES` samples from the
dataset that holds the transforms, each twice, through a shallow copy whose
transform only records what it is called with (the user's dataset is not
changed), and compares the two reads: the fetch. Then, from the recorded
input, it applies each transform :data:`APPLICATIONS` times to copies of the
same input and compares the outputs; the first output feeds the next
transform. Tensors, arrays, PIL images, numbers, strings and bytes are
compared by value, through tuples, lists and dicts; anything else counts as
different.

No random state is reset between the calls, so a random transform draws new
numbers each time. The global random states of Python, numpy and torch are
saved before the check and restored after it, so the script draws the same
numbers as it would without plumber. A part that raised, or could not be
reached, is reported unchecked (``None``); the check itself never raises.
"""

from __future__ import annotations

import copy
import math
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from plumber.torch.transforms import TransformSite

#: Samples read (the first and the last index of the dataset holding the transforms).
SAMPLES = 2

#: Times each transform is applied to the same input.
APPLICATIONS = 3

#: Times each sample is read to compare the fetch.
READS = 2


@dataclass(frozen=True)
class RepeatCheck:
    """The outcome per part: True (equal every time), False (differed), None (not checked).

    ``problem`` says why a part could not be checked (empty when all were).
    """

    fetch: bool | None
    transforms: tuple[bool | None, ...]
    problem: str = ""
    samples: int = 0


def check_repeatable(dataset: Any, site: TransformSite | None) -> RepeatCheck:
    """Read samples twice and apply each transform again to the same input (never raises)."""
    count = len(site.callables) if site is not None else 0
    try:
        with _random_state_kept():
            return _check(dataset, site)
    except Exception as exc:  # noqa: BLE001 - profiling must never break the user's script
        return RepeatCheck(None, (None,) * count, f"the check raised {_error(exc)}")


class _Recorder:
    """Stands in for the dataset's transform: remembers its arguments, returns its input."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if kwargs:
            return kwargs
        return args[0] if len(args) == 1 else args


def _passthrough(value: Any) -> Any:
    return value


def _check(dataset: Any, site: TransformSite | None) -> RepeatCheck:
    count = len(site.callables) if site is not None else 0
    holder = site.holder if site is not None else dataset
    recorder = _Recorder()
    reader = _reader(holder, site, recorder)
    indices = _indices(holder)
    if not indices:
        return RepeatCheck(None, (None,) * count, "the dataset is empty")
    fetch: list[bool | None] = []
    stages: list[list[bool | None]] = [[] for _ in range(count)]
    problems: list[str] = []
    for index in indices:
        reads = []
        for _ in range(READS):
            recorder.calls.clear()
            try:
                sample = reader[index]
            except Exception as exc:  # noqa: BLE001 - the user's dataset may raise anything
                problems.append(f"reading sample {index} raised {_error(exc)}")
                break
            reads.append((sample, list(recorder.calls)))
        if len(reads) < READS:
            fetch.append(None)
            continue
        fetch.append(all(same(reads[0], other) for other in reads[1:]))
        if site is None:
            continue
        calls = reads[0][1]
        if not calls:
            problems.append("the dataset did not call its transform when read")
            continue
        for i, outcome in enumerate(_apply_each(site, calls[0], problems)):
            stages[i].append(outcome)
    return RepeatCheck(
        fetch=_combined(fetch),
        transforms=tuple(_combined(s) for s in stages),
        problem="; ".join(dict.fromkeys(problems)),
        samples=len(indices),
    )


def _reader(holder: Any, site: TransformSite | None, recorder: _Recorder) -> Any:
    """A shallow copy of ``holder`` whose transform is ``recorder`` (``holder`` without one)."""
    if site is None:
        return holder
    reader = copy.copy(holder)
    if site.single or site.container is not None:
        replacement: Any = recorder
    else:
        sequence = getattr(holder, site.attribute)
        replacement = type(sequence)([recorder, *[_passthrough] * (len(sequence) - 1)])
    setattr(reader, site.attribute, replacement)
    return reader


def _indices(holder: Any) -> list[Any]:
    try:
        length = len(holder)
    except Exception:  # noqa: BLE001 - no length: try the first index alone
        return [0]
    return sorted({0, length - 1})[:SAMPLES] if length > 0 else []


def _apply_each(site: TransformSite, call: tuple[tuple[Any, ...], dict[str, Any]],
                problems: list[str]) -> Iterator[bool | None]:
    """Per transform: whether its outputs on copies of one input were all equal."""
    args, kwargs = call
    if site.single:
        only = site.callables[0]
        stages: list[Callable[[Any], Any]] = [lambda c: only(*c[0], **c[1])]
        value: Any = call
    elif kwargs:
        problems.append("the transform was called with keyword arguments")
        yield from (None for _ in site.callables)
        return
    else:
        stages = list(site.callables)
        value = args[0] if len(args) == 1 else args  # as torchvision's Compose passes them
    for i, stage in enumerate(stages):
        try:
            outputs = [stage(_copied(value)) for _ in range(APPLICATIONS)]
        except Exception as exc:  # noqa: BLE001 - the user's transform may raise anything
            problems.append(f"transform_{i} raised {_error(exc)}")
            yield from (None for _ in stages[i:])
            return
        yield all(same(outputs[0], other) for other in outputs[1:])
        value = outputs[0]


def _copied(value: Any) -> Any:
    """A deep copy, so a transform that changes its input in place sees the same input."""
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - not copyable: the same object (may read as different)
        return value


def _combined(outcomes: list[bool | None]) -> bool | None:
    """False if any sample differed, else None if any was unchecked, else True."""
    if not outcomes or None in outcomes and False not in outcomes:
        return None
    return all(outcomes)


def same(a: Any, b: Any) -> bool:
    """Whether two outputs are equal in value; what cannot be compared counts as different.

    Tensors (torchvision's ``tv_tensors`` too), numpy arrays and scalars, PIL
    images, tuples, lists and dicts are compared by value; other objects
    only through an ``__eq__`` of their own type that answers ``True``.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    torch, numpy, image = (sys.modules.get(m) for m in ("torch", "numpy", "PIL.Image"))
    if torch is not None and isinstance(a, torch.Tensor):
        return _same_tensor(torch, a, b)
    if numpy is not None and isinstance(a, (numpy.ndarray, numpy.generic)):
        return _same_array(numpy, a, b)
    if image is not None and isinstance(a, image.Image):
        return _same_image(a, b)
    if type(a).__eq__ is object.__eq__:
        return False
    try:
        return (a == b) is True
    except Exception:  # noqa: BLE001 - an __eq__ that cannot answer: different
        return False


def _same_tensor(torch: Any, a: Any, b: Any) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(a, b) or ((a == b) | (a.isnan() & b.isnan())).all())
    return bool(torch.equal(a, b))


def _same_array(numpy: Any, a: Any, b: Any) -> bool:
    if numpy.shape(a) != numpy.shape(b) or a.dtype != b.dtype:
        return False
    try:
        return bool(numpy.array_equal(a, b, equal_nan=True))
    except TypeError:  # equal_nan needs a numeric dtype
        return bool(numpy.array_equal(a, b))


def _same_image(a: Any, b: Any) -> bool:
    try:
        return a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()
    except Exception:  # noqa: BLE001 - not a readable image
        return False


@contextmanager
def _random_state_kept() -> Iterator[None]:
    """Restore the global random states of Python, numpy and torch afterwards."""
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    python_state = random.getstate()
    numpy_state = numpy.random.get_state() if numpy is not None else None
    torch_state = torch.random.get_rng_state() if torch is not None else None
    try:
        yield
    finally:
        random.setstate(python_state)
        if numpy_state is not None:
            numpy.random.set_state(numpy_state)
        if torch_state is not None:
            torch.random.set_rng_state(torch_state)


def _error(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0][:200]}" if message else type(exc).__name__
