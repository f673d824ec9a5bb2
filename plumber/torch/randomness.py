"""Whether a dataset's fetch and each of its transforms count as random: both checks combined.

A sample cache may go after a stage only when the stage is shown
deterministic, twice over: its static verdict
(:mod:`plumber.torch.determinism`) is not ``RANDOM``, and applied again to
the same input it gave equal outputs (:mod:`plumber.torch.repeatability`).
Everything else counts as random, and the profile marks it so (the
``random`` knob of its stage), with a ``note`` knob saying how it was
decided wherever the transform's torchvision class does not say it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from plumber.torch.determinism import DETERMINISTIC, RANDOM, Verdict, classify
from plumber.torch.repeatability import APPLICATIONS, READS, check_repeatable
from plumber.torch.transforms import find_transforms, transform_op, unwrap


class TransformInfo(NamedTuple):
    """A transform stage as recorded: its op, whether it counts as random, and why."""

    op: str
    random: bool
    note: str = ""


@dataclass(frozen=True)
class DatasetRandomness:
    """Whether a dataset's fetch and each of its transforms count as random, and why.

    ``key`` identifies the dataset and the transforms it was decided for, so
    a loader iterated again is not checked again.
    """

    key: tuple[int, ...]
    transforms: tuple[TransformInfo, ...]
    fetch_random: bool = False
    fetch_note: str = ""


def randomness_key(dataset: Any) -> tuple[int, ...]:
    """What a decision depends on: the dataset and the transforms it holds now."""
    site = find_transforms(dataset)
    callables = site.callables if site is not None else ()
    return (id(dataset), *(id(unwrap(c)) for c in callables))


def decide_randomness(dataset: Any, indexable: bool) -> DatasetRandomness:
    """Both checks on a dataset's transforms, and the repeat check on its fetch.

    Without an index (an iterable dataset, which no cache can serve) nothing
    is read: every transform counts as random, since it cannot be shown
    deterministic, and the fetch is left unmarked. Never raises: a failure
    leaves everything random.
    """
    try:
        return _decide(dataset, indexable)
    except Exception as exc:  # noqa: BLE001 - profiling must never break the user's script
        note = f"treated as random: deciding it raised {type(exc).__name__}"
        site = find_transforms(dataset)
        callables = site.callables if site is not None else ()
        return DatasetRandomness(randomness_key(dataset), tuple(
            TransformInfo(transform_op(t), True, note) for t in callables), True, note)


def _decide(dataset: Any, indexable: bool) -> DatasetRandomness:
    site = find_transforms(dataset)
    callables = site.callables if site is not None else ()
    verdicts = [classify(t) for t in callables]
    ops = [transform_op(t) for t in callables]
    if not indexable:
        unread = "an iterable dataset has no index to read a sample again by"
        return DatasetRandomness(randomness_key(dataset), tuple(
            _decided(op, verdict, None, unread)
            for op, verdict in zip(ops, verdicts, strict=True)))
    check = check_repeatable(dataset, site)
    infos = tuple(
        _decided(op, verdict, repeated, check.problem)
        for op, verdict, repeated in zip(ops, verdicts, check.transforms, strict=True)
    )
    fetch_note = ""
    if check.fetch is False:
        fetch_note = (f"random: reading the same sample {READS} times gave different samples, "
                      f"so no cache may hold what it reads")
    elif check.fetch is None:
        fetch_note = f"treated as random: a sample could not be read twice to compare " \
                     f"({check.problem})"
    return DatasetRandomness(randomness_key(dataset), infos, check.fetch is not True, fetch_note)


def _decided(op: str, verdict: Verdict, repeated: bool | None, problem: str) -> TransformInfo:
    """A static verdict and the repeat check's outcome (None: not checked) as one record."""
    if verdict.kind == RANDOM:
        return TransformInfo(op, True, "" if verdict.evident else f"random: {verdict.why}")
    if repeated is False:
        return TransformInfo(op, True, f"random: applied {APPLICATIONS} times to the same "
                                       f"input, it gave different outputs")
    if repeated is None:
        return TransformInfo(op, True, f"treated as random: {verdict.why}, but it could not "
                                       f"be applied again to compare ({problem})")
    if verdict.kind == DETERMINISTIC and verdict.evident:
        return TransformInfo(op, False)
    return TransformInfo(op, False, f"deterministic: {verdict.why}, and applied "
                                    f"{APPLICATIONS} times to the same inputs it gave equal "
                                    f"outputs")
