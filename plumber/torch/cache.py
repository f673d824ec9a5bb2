"""Cache a map-style dataset's samples part-way through its transforms.

``CachedDataset(dataset, upto=k)`` computes, once per index, the sample as
the dataset fetches it with its transforms up to and including the k-th
(``k=-1``: the fetch alone), keeps that, and applies the remaining
transforms on every access, so a random augmentation after the cache point
still differs from one epoch to the next.

The transforms are found by the profiler's own lookup, so they are numbered
as its ``transform_<i>`` stages
(:func:`plumber.torch.transforms.find_transforms`): on the dataset or along
its ``.dataset`` chain (``Subset`` and the like, up to 8 wrappers deep),
the attribute ``transform`` (else ``transforms``) holding torchvision's
``Compose`` (its ``.transforms`` list), a plain list of callables, or one
callable (a list of one; ``RandomApply`` and other
containers with logic of their own are one callable, see
:func:`plumber.torch.transforms.applies_in_order`). To learn which parts of a
sample the transforms produced, the wrapper keeps a shallow copy of that
chain whose transform applies only the first k+1 transforms and remembers
its outputs; after ``copy[i]`` those outputs are found by identity in the
returned structure (tuple, list, dict, nested), and their positions are
cached with the sample. Replaying applies the remaining transforms at those
positions. The dataset the user holds is never modified.

Entries live in a directory, one file per index (:mod:`plumber.caching.entrystore`),
so every worker process, forked or spawned, shares them, and they outlive
each epoch. The directory is private: made 0700 by plumber in a folder no
one else can replace it in, and checked to be this user's and writable by
no one else before every read. A sample of tensors, arrays and plain Python
values is stored so that reading it executes nothing; only other samples
are pickled (:mod:`plumber.torch.samplecodec`). ``location="memory"`` puts
the directory under ``/dev/shm``; any other value is a folder on disk,
under which a directory of its own is made. The directory is removed when
the wrapper is collected or the process that created it exits (never by a
worker).
"""

from __future__ import annotations

import copy
import hashlib
import operator
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from plumber.caching.entrystore import (
    EntryStore,
    check_private,
    check_shared_parent,
    make_missing_folders,
)
from plumber.torch import samplecodec
from plumber.torch.transforms import dataset_chain, find_transforms

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
        site = _transform_site(dataset)
        transforms = list(site.callables) if site else []
        if not -1 <= upto < len(transforms):
            raise ValueError(
                f"upto={upto} is not a transform of {type(dataset).__name__} "
                f"(it has {len(transforms)}; -1 caches the fetch alone)"
            )
        self.dataset = dataset
        self.upto = upto
        self.location = str(location)
        self._suffix = transforms[upto + 1:]
        self._marking = _Marking() if self._suffix else None
        self._marked, self._prefix = (_with_prefix(site, upto, self._marking) if self._marking
                                      else (None, None))
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
            try:
                sample, positions = samplecodec.loads(payload)
            except ValueError:
                self._store.discard(name)  # damaged: computed again below, and stored anew
            else:
                return _apply_at(sample, positions, self._suffix)
        if self._store.full or not self._replayable:
            return self.dataset[index]
        sample, positions = self._compute(index)
        if positions is None:
            return self.dataset[index]
        self._store.save(name, samplecodec.dumps((sample, positions)))
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

    def held_transforms(self) -> tuple[HeldTransforms, ...]:
        """The lists of the dataset's transforms this cache applies itself: the prefix it runs
        on a miss and the suffix it replays on every sample.

        They do not run through the dataset's transform attribute, so a profiler that times
        the transforms there (``plumber/torch/workerside.py``) puts its wrappers in these too.
        """
        held = []
        if self._prefix is not None and self.upto >= 0:
            held.append(HeldTransforms(*self._prefix, first=0, count=self.upto + 1))
        if self._suffix:
            held.append(HeldTransforms(self, "_suffix", first=self.upto + 1,
                                       count=len(self._suffix)))
        return tuple(held)

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


def sample_caches(dataset: Any) -> list[CachedDataset]:
    """The :class:`CachedDataset` instances along ``dataset``'s ``.dataset`` wrappers, outermost
    first (a plan's cache, or one the user wrote)."""
    return [d for d in dataset_chain(dataset) if isinstance(d, CachedDataset)]


def transform_count(dataset: Any) -> int:
    """How many transforms ``dataset`` (or a dataset it wraps) applies; 0 without any."""
    site = _transform_site(dataset)
    return len(site.callables) if site else 0


@dataclass(frozen=True)
class HeldTransforms:
    """A list of a dataset's transforms that a :class:`CachedDataset` applies itself.

    The list is ``holder.<attribute>``; its first ``count`` items are the
    dataset's transforms from its ``first``-th on (after them the list may hold
    the cache's marker, which is not a transform).
    """

    holder: Any
    attribute: str
    first: int
    count: int


class _Marking:
    """Applies ``transforms`` (set when placed) and remembers what it returned."""

    def __init__(self) -> None:
        self.transforms: list[Callable[[Any], Any]] = []
        self.outputs: list[Any] = []

    def __call__(self, value: Any) -> Any:
        for transform in self.transforms:
            value = transform(value)
        self.outputs.append(value)  # a strong reference: its id cannot be reused meanwhile
        return value


@dataclass(frozen=True)
class _Site:
    """Where a dataset keeps its transforms, found by the profiler's lookup.

    ``chain`` runs from the dataset along ``.dataset`` to the holder of
    ``attribute``; ``sequence`` says the attribute is a plain list of callables
    (the dataset iterates it) rather than one callable (a ``Compose`` or not).
    """

    chain: tuple[Any, ...]
    attribute: str
    callables: tuple[Callable[[Any], Any], ...]
    sequence: bool


def _transform_site(dataset: Any) -> _Site | None:
    """Where the profiler finds the dataset's transforms (:func:`find_transforms`), or None."""
    found = find_transforms(dataset)
    if found is None:
        return None
    chain = dataset_chain(dataset)
    holder = next(i for i, wrapper in enumerate(chain) if wrapper is found.holder)
    sequence = found.container is None and not found.single
    return _Site(tuple(chain[:holder + 1]), found.attribute, found.callables, sequence)


def _with_prefix(site: _Site, upto: int, marking: _Marking
                 ) -> tuple[Any, tuple[Any, str]]:
    """A shallow copy of the chain whose transform stops after ``upto``, marking its outputs,
    and where the list of that prefix's transforms is held (object and attribute)."""
    copies = [copy.copy(d) for d in site.chain]
    prefix = list(site.callables[:upto + 1])
    marking.transforms = [] if site.sequence else prefix
    setattr(copies[-1], site.attribute, [*prefix, marking] if site.sequence else marking)
    for outer, inner in zip(copies, copies[1:], strict=False):
        outer.dataset = inner
    held = (copies[-1], site.attribute) if site.sequence else (marking, "transforms")
    return copies[0], held


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
    """A new private directory for one cache, and whether it is RAM-backed.

    It is made 0700 by ``mkdtemp`` in a folder that others cannot replace it
    in (:func:`plumber.caching.entrystore.check_shared_parent`); missing
    folders on the way are made 0700.
    """
    in_memory = location == "memory"
    if not in_memory:
        base = Path(location).expanduser()
        make_missing_folders(base)
    elif SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        base = SHARED_MEMORY
    else:
        base, in_memory = Path(tempfile.gettempdir()), False
    check_shared_parent(base)
    directory = Path(tempfile.mkdtemp(prefix="plumber-cache-", dir=base))
    check_private(directory)
    if location == "memory" and not in_memory:
        warnings.warn(f"{SHARED_MEMORY} is not available: the memory cache is kept in "
                      f"{directory} instead", stacklevel=3)
    return directory, in_memory


def _remove_if_owner(directory: Path, owner_pid: int) -> None:
    # A forked worker inherits the finalizer; only the process that made the
    # directory may remove it.
    if os.getpid() == owner_pid:
        shutil.rmtree(directory, ignore_errors=True)
