"""Observe every torch DataLoader a script iterates, unmodified.

While a :class:`TorchHooks` context is active:

- ``DataLoader.__init__`` records the user's source line of each loader
  (its occurrence counted under the kind ``workers``);
- ``DataLoader._get_iterator`` (every ``iter(loader)``, whoever calls it: a
  ``for`` loop or a trainer) registers the iterator and instruments where
  the samples are made: with workers, the loader's ``worker_init_fn`` is a
  :class:`~plumber.torch.workerside.WorkerStart` for the moment the workers
  start (then the user's own is put back); without, the iterator's fetcher
  and the dataset's transforms are timed right here;
- ``_BaseDataLoaderIter.__next__`` times the consumer (time blocked in the
  call versus time between calls), counts the batches of each pass over the
  data (a pass is complete when it ends in ``StopIteration``; persistent
  workers reuse one iterator for every pass) and enforces the step/duration bounds by
  raising :class:`~plumber.measure.runbounds.BoundReached`, like the tf.data hooks
  (the duration counts from when the hooks were installed, i.e. from the
  script's ``import torch``, as tf.data's counts from ``import tensorflow``);
- with pinned memory on an accelerator, ``pin_memory`` is timed.

Everything patched in this process is restored on exit, also when the
script raised; then the workers' stats files are read and the folder removed.
No torch pipeline has a known infinite length, so unlike tf.data no default
duration bound is imposed: Ctrl-C still leaves a profile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumber.measure.callsite import user_callsite
from plumber.measure.poller import Poller
from plumber.measure.runbounds import RunBounds, ScriptStopper
from plumber.measure.steady import SteadyWindow, median_step, steady_of
from plumber.records.identity import StageCounter
from plumber.records.kinds import POOL, SAMPLE_CACHE
from plumber.records.profile import RECENT_STEPS, IteratorPass, Pipeline, SourceLocation
from plumber.torch.pipelines import LoaderSummary, build_pipeline
from plumber.torch.randomness import DatasetRandomness, decide_randomness, randomness_key
from plumber.torch.sizes import describe
from plumber.torch.transforms import transform_op
from plumber.torch.workerside import (
    Replaced,
    StageCounts,
    StageRecorder,
    WorkerSnapshot,
    WorkerStart,
    instrument_fetcher,
    wrap_cached_transforms,
    wrap_transforms,
)


@dataclass
class PassCount:
    """Batches delivered so far in one pass over a loader's data, and whether it ended."""

    batches: int = 0
    complete: bool = False


@dataclass
class WatchedLoader:
    """What was seen of one DataLoader object, over all its iterators (epochs)."""

    serial: int
    ref: Any
    source: SourceLocation | None
    knobs: dict[str, Any] = field(default_factory=dict)
    fetch_op: str = "__getitem__"
    collate_op: str = ""
    randomness: DatasetRandomness | None = None
    iterators: int = 0
    steps: int = 0
    wait_s: float = 0.0
    step_s: float = 0.0
    recent_steps: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_STEPS))
    element_spec: str = ""
    recorder: StageRecorder | None = None
    worker_iterators: list[Any] = field(default_factory=list)
    pin: StageCounts = StageCounts()
    snapshots: list[WorkerSnapshot] = field(default_factory=list)
    passes: list[PassCount] = field(default_factory=list)
    windows: list[SteadyWindow] = field(default_factory=list)


@dataclass
class IteratorWatch:
    """One loader iterator: the loader it serves and when it last returned a batch.

    ``current`` is the pass it is delivering (one of its loader's
    ``passes``): opened by the first batch of a pass, closed by the
    ``StopIteration`` that ends it. A persistent-workers loader resets its
    one iterator for each pass, also after one abandoned midway.
    """

    ref: Any
    loader: WatchedLoader
    last_return: float | None = None
    current: PassCount | None = None
    steady: SteadyWindow | None = None


def batches_asked_at_start(iterator: Any) -> int:
    """Batches a loader iterator asks its workers for at once when it starts (1 without workers).

    ``num_workers * prefetch_factor``, read from the multiprocessing
    iterator (private attributes, as torch 2.x names them); its steady
    window opens once they have been delivered.
    """
    workers = getattr(iterator, "_num_workers", 0)
    factor = getattr(iterator, "_prefetch_factor", None) or 1
    if not isinstance(workers, int) or not isinstance(factor, int) or workers <= 0:
        return 1
    return max(1, workers * factor)


class TorchHooks:
    """Context manager installing the DataLoader observation hooks."""

    def __init__(
        self,
        bounds: RunBounds | None = None,
        flush_interval_s: float = 0.5,
        poll_interval_s: float = 0.25,
    ) -> None:
        self.bounds = bounds or RunBounds()
        self.started_at = 0.0
        self.flush_interval_s = flush_interval_s
        self.poll_interval_s = poll_interval_s
        self.counter = StageCounter()
        self.loaders: list[WatchedLoader] = []
        self.delivered = 0
        self._by_id: dict[int, WatchedLoader] = {}
        self._sources: dict[int, tuple[Any, SourceLocation]] = {}
        self._iterators: dict[int, IteratorWatch] = {}
        self._restore: list[tuple[Any, str, Any, Any]] = []
        self._replaced: list[Replaced] = []
        self._stats_dir: str | None = None
        self._pin_threads: dict[int, WatchedLoader] = {}
        self._consuming = threading.local()
        self._poller: Poller | None = None
        self._stopper = ScriptStopper()

    # -- context -----------------------------------------------------------
    def __enter__(self) -> TorchHooks:
        import importlib

        dataloader = importlib.import_module("torch.utils.data.dataloader")
        self.started_at = time.monotonic()
        self._patch(dataloader.DataLoader, "__init__", self._wrap_init)
        self._patch(dataloader.DataLoader, "_get_iterator", self._wrap_get_iterator)
        self._patch(dataloader._BaseDataLoaderIter, "__next__", self._wrap_next)
        limit = self.bounds.duration_s
        if limit is not None and limit != float("inf"):
            self._poller = Poller("plumber-torch-poll", self.poll_interval_s, self._check_bounds)
            self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._poller is not None:
            self._poller.stop()
        for owner, name, original, replacement in reversed(self._restore):
            # Put back only what is still ours: a patch stacked on top of ours
            # and removed out of order must not be resurrected.
            if owner.__dict__.get(name) is replacement:
                setattr(owner, name, original)
        self._restore.clear()
        for replaced in reversed(self._replaced):
            replaced.restore()
        self._replaced.clear()
        self._collect_worker_stats()

    def _patch(self, owner: Any, name: str, factory: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name]
        replacement = factory(original)
        setattr(owner, name, replacement)
        self._restore.append((owner, name, original, replacement))

    # -- wrappers ----------------------------------------------------------
    def _wrap_init(self, original: Any) -> Any:
        hooks = self

        @functools.wraps(original)
        def __init__(loader: Any, *args: Any, **kwargs: Any) -> None:
            original(loader, *args, **kwargs)
            location = user_callsite(skip=2)
            if location is None:
                return
            occurrence = hooks.counter.take((location.file, location.line, POOL))
            if occurrence is None:
                return
            location = dataclasses.replace(location, occurrence=occurrence)
            hooks._sources[id(loader)] = (weakref.ref(loader), location)

        return __init__

    def _wrap_get_iterator(self, original: Any) -> Any:
        hooks = self

        def _get_iterator(loader: Any) -> Any:
            watch = hooks._watch(loader)
            if loader.num_workers > 0:
                user_fn = loader.worker_init_fn
                tag = f"{watch.serial}-{watch.iterators}"
                loader.worker_init_fn = WorkerStart(
                    user_fn, hooks._worker_stats_dir(), tag, hooks.flush_interval_s,
                    probe_cache_costs=watch.iterators == 0,
                )
                try:
                    iterator = original(loader)
                finally:
                    loader.worker_init_fn = user_fn
                watch.worker_iterators.append(weakref.ref(iterator))
            else:
                iterator = original(loader)
                hooks._instrument_main(watch, loader, iterator)
            watch.iterators += 1
            watch.knobs = {**loader_knobs(loader), "iterations": watch.iterators}
            hooks._iterators[id(iterator)] = IteratorWatch(weakref.ref(iterator), watch)
            if getattr(iterator, "_pin_memory", False):
                hooks._watch_pinning(watch, iterator)
            return iterator

        return _get_iterator

    def _wrap_next(self, original: Any) -> Any:
        hooks = self
        iterators, clock, consuming = self._iterators, time.perf_counter, self._consuming

        def __next__(it: Any) -> Any:
            # On the consumer's hot path: keep it to a few attribute updates.
            watch = iterators.get(id(it))
            if watch is None or watch.ref() is not it:
                return original(it)
            hooks._stopper.reraise_lost()
            hooks._check_bounds()
            loader = watch.loader
            called = clock()
            fresh = it._num_yielded == 0  # a new pass, also of an iterator reset for it
            if watch.last_return is not None and not fresh:
                step = called - watch.last_return
                loader.step_s += step
                loader.recent_steps.append(step)
            consuming.loader = loader
            try:
                value = original(it)
            except BaseException as exc:  # the end of the epoch, or a failing stage
                loader.wait_s += clock() - called
                watch.last_return = None
                if isinstance(exc, StopIteration) and watch.current is not None and not fresh:
                    watch.current.complete = True
                    watch.current = None
                raise
            finally:
                consuming.loader = None
            returned = watch.last_return = clock()
            loader.wait_s += returned - called
            loader.steps += 1
            hooks.delivered += 1
            if watch.current is None or fresh:
                watch.current = PassCount()
                loader.passes.append(watch.current)
            watch.current.batches += 1
            if watch.steady is None:
                watch.steady = SteadyWindow(opens_at=batches_asked_at_start(it))
                loader.windows.append(watch.steady)
            watch.steady.step(returned, loader.wait_s)
            if not loader.element_spec:
                loader.element_spec = describe(value)[:500]
            return value

        return __next__

    # -- registration ------------------------------------------------------
    def source_of(self, loader: Any) -> SourceLocation | None:
        """Where ``loader`` was constructed, if that happened while the hooks were installed."""
        entry = self._sources.get(id(loader))
        return entry[1] if entry is not None and entry[0]() is loader else None

    def name_loader(self, loader: Any, location: SourceLocation) -> bool:
        """Give a loader constructed before the hooks a source line; False if it has one."""
        if self.source_of(loader) is not None:
            return False
        self._sources[id(loader)] = (weakref.ref(loader), location)
        return True

    def _watch(self, loader: Any) -> WatchedLoader:
        watch = self._by_id.get(id(loader))
        if watch is None or watch.ref() is not loader:
            source = self.source_of(loader)
            watch = WatchedLoader(serial=len(self.loaders), ref=weakref.ref(loader), source=source)
            self.loaders.append(watch)
            self._by_id[id(loader)] = watch
        dataset = loader.dataset
        if watch.randomness is None or watch.randomness.key != randomness_key(dataset):
            watch.randomness = decide_randomness(dataset, indexable=_map_style(loader))
        watch.fetch_op = _fetch_op(loader)
        watch.collate_op = transform_op(loader.collate_fn) if loader.collate_fn else ""
        return watch

    def _instrument_main(self, watch: WatchedLoader, loader: Any, iterator: Any) -> None:
        """Time the chain in this process (``num_workers == 0``)."""
        if watch.recorder is None:
            watch.recorder = StageRecorder(-1, os.getpid())
        _, replaced = wrap_transforms(loader.dataset)
        if replaced is not None:
            self._replaced.append(replaced)
        self._replaced += wrap_cached_transforms(loader.dataset)
        fetcher = getattr(iterator, "_dataset_fetcher", None)
        if fetcher is not None:
            instrument_fetcher(fetcher, watch.recorder)

    def _worker_stats_dir(self) -> str:
        if self._stats_dir is None:
            self._stats_dir = tempfile.mkdtemp(prefix="plumber-torch-")
        return self._stats_dir

    # -- pinned memory -----------------------------------------------------
    def _watch_pinning(self, watch: WatchedLoader, iterator: Any) -> None:
        """Time ``pin_memory`` (patched on first use): in its thread, or in the consumer's."""
        import importlib

        module = importlib.import_module("torch.utils.data._utils.pin_memory")
        if not any(owner is module for owner, *_ in self._restore):
            self._patch(module, "pin_memory", self._wrap_pin)
        thread = getattr(iterator, "_pin_memory_thread", None)
        if thread is not None and thread.ident is not None:
            self._pin_threads[thread.ident] = watch

    def _wrap_pin(self, original: Any) -> Any:
        """Time each batch's ``pin_memory`` once: torch's calls itself for every part of a batch."""
        hooks = self
        inside = threading.local()

        def pin_memory(data: Any, *args: Any, **kwargs: Any) -> Any:
            watch = hooks._pin_threads.get(threading.get_ident()) or getattr(
                hooks._consuming, "loader", None
            )
            if watch is None or getattr(inside, "batch", False):
                return original(data, *args, **kwargs)
            inside.batch = True
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                return original(data, *args, **kwargs)
            finally:
                inside.batch = False
                pinned = StageCounts(1, time.perf_counter() - wall0, time.thread_time() - cpu0)
                watch.pin = watch.pin.plus(pinned)

        return pin_memory

    # -- bounds ------------------------------------------------------------
    def _check_bounds(self) -> None:
        if self.bound_reached is not None:
            return
        steps, limit = self.bounds.steps, self.bounds.duration_s
        if steps is not None and self.delivered >= steps:
            self._stopper.stop("steps")
        elif limit is not None and time.monotonic() - self.started_at >= limit:
            self._stopper.stop("duration")

    @property
    def bound_reached(self) -> str | None:
        """The bound that stopped the script (``steps``, ``duration``), once one did."""
        return self._stopper.bound

    # -- collection --------------------------------------------------------
    def _collect_worker_stats(self) -> None:
        """Read every worker's stats file into its loader, then remove the folder."""
        if self._stats_dir is None:
            return
        if any(_workers_alive(ref()) for w in self.loaders for ref in w.worker_iterators):
            # Live workers (persistent, or an iterator still referenced) write
            # what they did since their last flush within one interval.
            time.sleep(self.flush_interval_s + 0.15)
        files = []
        for path in Path(self._stats_dir).glob("*.json"):
            with contextlib.suppress(ValueError):
                serial, iteration, worker, _pid = (int(p) for p in path.stem.split("-"))
                files.append(((serial, iteration, worker), path))
        for (serial, *_), path in sorted(files):
            with contextlib.suppress(OSError, ValueError):
                if serial < len(self.loaders):
                    data = json.loads(path.read_text("utf-8"))
                    self.loaders[serial].snapshots.append(WorkerSnapshot.from_json(data))
        shutil.rmtree(self._stats_dir, ignore_errors=True)
        self._stats_dir = None

    def network_traces(self) -> list[dict[str, Any]]:
        """The HTTP request traces the workers wrote: the last one of each worker process."""
        latest: dict[int, dict[str, Any]] = {}
        for watch in self.loaders:
            for snapshot in watch.snapshots:
                trace = snapshot.network
                if trace:
                    latest[snapshot.pid or id(trace)] = trace
        return list(latest.values())

    def pipelines(
        self, first_index: int = 0, clock_origin: float | None = None
    ) -> tuple[Pipeline, ...]:
        """Pipeline records of the loaders that delivered or tried to deliver batches.

        ``clock_origin`` (the resource samples' time 0 on ``time.monotonic()``)
        places the iterators' steady windows on the samples' clock.
        """
        records = []
        for watch in self.loaders:
            snapshots = list(watch.snapshots)
            if watch.recorder is not None:
                snapshots.append(watch.recorder.snapshot())
            tried = any(s.batches or s.errors for s in snapshots)
            if watch.steps == 0 and not tried:
                continue
            pipeline_id = f"pipeline-{first_index + len(records)}"
            records.append(build_pipeline(pipeline_id, _summary(watch, clock_origin), snapshots))
        return tuple(records)


def _summary(watch: WatchedLoader, clock_origin: float | None = None) -> LoaderSummary:
    notes = []
    if watch.source is None:
        notes.append("the DataLoader was constructed before profiling started: no source line")
    randomness = watch.randomness
    return LoaderSummary(
        source=watch.source,
        knobs=watch.knobs,
        fetch_op=watch.fetch_op,
        collate_op=watch.collate_op,
        transforms=randomness.transforms if randomness is not None else (),
        fetch_random=randomness is not None and randomness.fetch_random,
        fetch_note=randomness.fetch_note if randomness is not None else "",
        steps=watch.steps,
        wait_s=watch.wait_s,
        step_s=watch.step_s,
        step_median_s=median_step(watch.recent_steps),
        element_spec=watch.element_spec,
        pin=watch.pin if watch.pin.elements else None,
        notes=tuple(notes),
        passes=tuple(IteratorPass(p.batches, p.complete) for p in watch.passes),
        steady=steady_of(watch.windows, clock_origin),
    )


def _workers_alive(iterator: Any) -> bool:
    if iterator is None or getattr(iterator, "_shutdown", True):
        return False
    return any(w.is_alive() for w in getattr(iterator, "_workers", ()))


def _fetch_op(loader: Any) -> str:
    dataset = loader.dataset
    if not _map_style(loader):
        return "__iter__"
    if loader.batch_sampler is not None and getattr(dataset, "__getitems__", None):
        return "__getitems__"
    return "__getitem__"


def _map_style(loader: Any) -> bool:
    from torch.utils.data import IterableDataset

    return not isinstance(loader.dataset, IterableDataset)


def loader_knobs(loader: Any) -> dict[str, Any]:
    """The DataLoader's settings as the ``workers`` stage's knobs (docs/torch-pipelines.md)."""
    num_workers = int(loader.num_workers)
    map_style = _map_style(loader)
    knobs: dict[str, Any] = {
        "parallelism": max(num_workers, 1),
        "num_workers": num_workers,
        "prefetch_factor": loader.prefetch_factor if num_workers > 0 else None,
        "persistent_workers": bool(loader.persistent_workers),
        "pin_memory": bool(loader.pin_memory),
        "batch_size": loader.batch_size,
        "drop_last": bool(loader.drop_last),
        "sampler": type(loader.sampler).__name__,
        "dataset": type(loader.dataset).__name__,
        "map_style": map_style,
        "start_method": _start_method(loader) if num_workers > 0 else "main",
    }
    if map_style and hasattr(loader.dataset, "__len__"):
        with contextlib.suppress(TypeError, NotImplementedError):
            knobs["cardinality"] = len(loader.sampler)
    from plumber.torch.cache import sample_caches

    caches = sample_caches(loader.dataset)
    if caches:
        knobs[SAMPLE_CACHE] = caches[0].upto
    return knobs


def _start_method(loader: Any) -> str:
    """The start method the loader's workers use, without fixing the process default."""
    import multiprocessing

    context = loader.multiprocessing_context
    if context is not None:
        return str(context.get_start_method())
    method = multiprocessing.get_start_method(allow_none=True)
    if method is None:  # not fixed yet: the platform default that would be used
        default = multiprocessing.context._default_context
        method = getattr(default, "_default_context", default).get_start_method()
    return str(method)
