"""Find the transforms a map-style or iterable dataset applies to each sample, and name them.

Each callable of the dataset's ``Compose``-like transform becomes a stage of
its own (``transform_<i>``), so a heavy augmentation is named rather than
hidden inside ``fetch``. The transform is found on the dataset or on a
dataset it wraps (``Subset`` and other wrappers keep theirs in ``.dataset``):
the attribute ``transform``, else ``transforms``, holding torchvision's
``Compose`` (v1 or v2; its ``.transforms`` applied in order), a plain
sequence of callables, or a single callable (one stage). Any other object
holding a ``.transforms`` list (``RandomApply``, ``RandomChoice``,
``RandomOrder``, a user class with logic of its own) is one stage: splitting
it would drop its own logic wherever the stages are run one by one (the
sample cache replays the stages after its cache point).

Pure: no torch import; works on any objects.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Any

#: Attributes holding a dataset's per-sample transform, in the order they are tried.
TRANSFORM_ATTRIBUTES = ("transform", "transforms")

#: How many ``.dataset`` wrappers are looked through.
_MAX_WRAPPERS = 8


@dataclass(frozen=True)
class TransformSite:
    """Where a dataset keeps its transform, and the callables it applies in order.

    ``container`` is the object whose ``.transforms`` holds the sequence
    (a ``Compose``), or ``None`` when ``holder.<attribute>`` is the sequence
    itself or a single callable (then ``single`` is true).
    """

    holder: Any
    attribute: str
    container: Any
    callables: tuple[Any, ...]
    single: bool = False


def find_transforms(dataset: Any) -> TransformSite | None:
    """The dataset's transform site, looking through ``.dataset`` wrappers; None if none."""
    for current in dataset_chain(dataset):
        for attribute in TRANSFORM_ATTRIBUTES:
            site = _site(current, attribute)
            if site is not None:
                return site
    return None


def dataset_chain(dataset: Any) -> list[Any]:
    """``dataset`` and the datasets it wraps along ``.dataset``, each once, at most
    :data:`_MAX_WRAPPERS` deep."""
    chain: list[Any] = []
    current = dataset
    while current is not None and len(chain) < _MAX_WRAPPERS and \
            all(current is not seen for seen in chain):
        chain.append(current)
        current = _safe_getattr(current, "dataset")
    return chain


def applies_in_order(container: Any) -> bool:
    """True for torchvision's ``Compose`` (v1 or v2): it applies ``.transforms`` one after another.

    Only a container known to do exactly that may be split into stages.
    """
    kind = type(container)
    return kind.__name__ == "Compose" and kind.__module__.startswith("torchvision.")


def _site(holder: Any, attribute: str) -> TransformSite | None:
    value = _safe_getattr(holder, attribute)
    if value is None:
        return None
    inner = _safe_getattr(value, "transforms")
    if _is_callables(inner) and applies_in_order(value):
        return TransformSite(holder, attribute, value, tuple(inner))
    if _is_callables(value):
        return TransformSite(holder, attribute, None, tuple(value))
    if callable(value):
        return TransformSite(holder, attribute, None, (value,), single=True)
    return None


def _is_callables(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(callable(v) for v in value)
    )


def _safe_getattr(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a user property may raise anything
        return None


def unwrap(transform: Any) -> Any:
    """The user's transform behind plumber's timing wrapper (itself when not wrapped)."""
    own = getattr(transform, "__dict__", None)
    return own.get("_plumber_inner", transform) if isinstance(own, dict) else transform


def transform_op(transform: Any) -> str:
    """The name a transform stage shows: its class, or its function's name."""
    transform = unwrap(transform)
    if isinstance(transform, functools.partial):
        return transform_op(transform.func)
    if isinstance(transform, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return transform.__name__
    return type(transform).__name__
