"""Cache a map-style dataset's samples part-way through its transforms.

``CachedDataset(dataset, upto=k)`` computes, once per index, the sample as
the dataset fetches it with its transforms up to and including the k-th
(``k=-1``: the fetch alone), keeps that, and applies the remaining
transforms on every access, so a random augmentation after the cache point
still differs from one epoch to the next.

The transforms are the ``transforms`` list of the ``Compose``-like object on
the dataset's ``transform`` attribute (the torchvision convention), found on
the dataset or along its ``.dataset`` chain (``Subset`` and the like); a
plain callable there counts as a list of one. To learn which parts of a
sample the transforms produced, the wrapper keeps a shallow copy of that
chain whose transform applies only the first k+1 transforms and remembers
its outputs; after ``copy[i]`` those outputs are found by identity in the
returned structure (tuple, list, dict, nested), and their positions are
cached with the sample. Replaying applies the remaining transforms at those
positions. The dataset the user holds is never modified.

Entries live in a directory, one file per index (:mod:`plumber.torch.cachestore`),
so every worker process, forked or spawned, shares them, and they outlive
each epoch. ``location="memory"`` puts the directory under ``/dev/shm``;
any other value is a folder on disk, under which a directory of its own is
made. The directory is removed when the wrapper is collected or the process
that created it exits (never by a worker).
"""

from __future__ import annotations

import copy
import hashlib
import operator
import os
import pickle
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from plumber.torch.cachestore import EntryStore

SHARED_MEMORY = Path("/dev/shm")

#: Where a transformed object sits in a sample: keys and indices from the top.
Position = tuple[Any, ...]


class CachedDataset(Dataset):
    """``dataset`` with its fetch and first ``upto + 1`` transforms cached per index.

    ``location``: ``"memory"`` (a directory under ``/dev/shm``, or the
    temporary folder when there is none, with a warning) or a folder on
    disk. ``budget_bytes``: the most bytes of entries stored; past it (or
    when the filesystem or memory runs low) no more are added, and samples
    not cached are computed as the dataset would.
    """

    def __init__(
        self,
        dataset: Any,
        upto: int = -1,
        location: str | os.PathLike[str] = "memory",
        budget_bytes: int | None = None,
    ) -> None:
        if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
            raise TypeError(
                f"CachedDataset caches map-style datasets, read by index; "
                f"{type(dataset).__name__} has no index to cache by"
            )
        owners = _transform_owners(dataset)
        transforms = _transform_list(owners[-1].transform) if owners else []
        if not -1 <= upto < len(transforms):
            raise ValueError(
                f"upto={upto} is not a transform of {type(dataset).__name__} "
                f"(it has {len(transforms)}; -1 caches the fetch alone)"
            )
        self.dataset = dataset
        self.upto = upto
        self.location = str(location)
        self._suffix = transforms[upto + 1:]
        self._marking = _Marking(transforms[:upto + 1]) if self._suffix else None
        self._marked = (
            _with_transform(dataset, owners, self._marking) if self._marking else None
        )
        directory, in_memory = _make_directory(self.location)
        self.directory = directory
        self._store = EntryStore(directory, budget_bytes, in_memory)
        self._lock = threading.Lock()
        self._replayable = True
        weakref.finalize(self, _remove_if_owner, directory, os.getpid())

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        name = _entry_name(index)
        payload = self._store.load(name)
        if payload is not None:
            sample, positions = pickle.loads(payload)
            return _apply_at(sample, positions, self._suffix)
        if self._store.full or not self._replayable:
            return self.dataset[index]
        sample, positions = self._compute(index)
        if positions is None:
            return self.dataset[index]
        self._store.save(name, pickle.dumps((sample, positions), protocol=5))
        return _apply_at(sample, positions, self._suffix)

    @property
    def full(self) -> bool:
        """Whether the cache takes no more entries (its budget or its room is used)."""
        return self._store.full

    def full_reason(self) -> str | None:
        """Why the cache is full, or None while it is not."""
        return self._store.full_reason()

    def cached_entries(self) -> int:
        """How many samples are cached."""
        return self._store.entries()

    def __repr__(self) -> str:
        return (f"CachedDataset({type(self.dataset).__name__}, upto={self.upto}, "
                f"location={self.location!r}, directory={str(self.directory)!r})")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _compute(self, index: Any) -> tuple[Any, list[Position] | None]:
        """The sample up to the cache point, and where its transformed parts are."""
        if self._marking is None:
            return self.dataset[index], []
        with self._lock:
            self._marking.outputs.clear()
            sample = self._marked[index]
            outputs, self._marking.outputs = self._marking.outputs, []
        positions = _positions(sample, outputs)
        if positions is None and self._replayable:
            self._replayable = False
            warnings.warn(
                f"{type(self.dataset).__name__} changes its transform's output before "
                f"returning it, so the transforms after the cache point cannot be replayed: "
                f"its samples are computed uncached", stacklevel=3,
            )
        return sample, positions


def transform_count(dataset: Any) -> int:
    """How many transforms ``dataset`` (or a dataset it wraps) applies; 0 without any."""
    owners = _transform_owners(dataset)
    return len(_transform_list(owners[-1].transform)) if owners else 0


class _Marking:
    """Applies the transforms before the cache point and remembers what it returned."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)
        self.outputs: list[Any] = []

    def __call__(self, value: Any) -> Any:
        for transform in self.transforms:
            value = transform(value)
        self.outputs.append(value)  # a strong reference: its id cannot be reused meanwhile
        return value


def _transform_owners(dataset: Any) -> list[Any]:
    """The ``.dataset`` chain from ``dataset`` to the first one with a transform, or []."""
    chain, seen = [dataset], set()
    while id(chain[-1]) not in seen:
        seen.add(id(chain[-1]))
        if callable(getattr(chain[-1], "transform", None)):
            return chain
        inner = getattr(chain[-1], "dataset", None)
        if inner is None:
            return []
        chain.append(inner)
    return []


def _transform_list(transform: Any) -> list[Callable[[Any], Any]]:
    inner = getattr(transform, "transforms", None)
    return list(inner) if isinstance(inner, (list, tuple)) else [transform]


def _with_transform(dataset: Any, owners: list[Any], transform: Any) -> Any:
    """A shallow copy of the chain down to the owner, whose transform is ``transform``."""
    copies = [copy.copy(d) for d in owners]
    copies[-1].transform = transform
    for outer, inner in zip(copies, copies[1:], strict=False):
        outer.dataset = inner
    return copies[0]


def _positions(sample: Any, outputs: list[Any]) -> list[Position] | None:
    """Where each output sits in ``sample``; None when any of them is not there as is."""
    wanted = {id(o) for o in outputs}
    found: list[Position] = []

    def walk(value: Any, position: Position) -> None:
        if id(value) in wanted:
            found.append(position)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                walk(item, (*position, i))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*position, key))

    walk(sample, ())
    return found if len(found) == len(outputs) else None


def _apply_at(sample: Any, positions: list[Position], transforms: list[Callable]) -> Any:
    for position in positions:
        sample = _replace(sample, position, transforms)
    return sample


def _replace(value: Any, position: Position, transforms: list[Callable]) -> Any:
    if not position:
        for transform in transforms:
            value = transform(value)
        return value
    key, rest = position[0], position[1:]
    if isinstance(value, dict):
        return type(value)({**value, key: _replace(value[key], rest, transforms)})
    items = list(value)
    items[key] = _replace(items[key], rest, transforms)
    if isinstance(value, list):
        return items
    return type(value)._make(items) if hasattr(type(value), "_make") else tuple(items)


def _entry_name(index: Any) -> str:
    try:
        return str(operator.index(index))
    except TypeError:
        return "k" + hashlib.sha1(repr(index).encode()).hexdigest()


def _make_directory(location: str) -> tuple[Path, bool]:
    """A new directory for one cache, and whether it is RAM-backed."""
    if location == "memory":
        if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="plumber-cache-", dir=SHARED_MEMORY)), True
        fallback = Path(tempfile.mkdtemp(prefix="plumber-cache-"))
        warnings.warn(f"{SHARED_MEMORY} is not available: the memory cache is kept in "
                      f"{fallback} instead", stacklevel=3)
        return fallback, False
    base = Path(location).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="plumber-cache-", dir=base)), False


def _remove_if_owner(directory: Path, owner_pid: int) -> None:
    # A forked worker inherits the finalizer; only the process that made the
    # directory may remove it.
    if os.getpid() == owner_pid:
        shutil.rmtree(directory, ignore_errors=True)
