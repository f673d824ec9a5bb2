"""Per-stage timing where a DataLoader does its work: its worker processes, or the main one.

PyTorch's profilers do not see inside DataLoader workers, so plumber
measures there itself. For each batch a :class:`StageRecorder` times the
fetcher's ``fetch`` (reading the samples), each transform of the dataset's
``Compose`` (``transform_<i>``) and the collate function, in wall time and
in this thread's CPU time (``time.thread_time``, so a fetch that waits on a
remote read shows wall >> CPU); fetch's own time excludes the transforms
and collate nested in it. A stage that raises is blamed with the error.
A transform runs once per sample, so timing every call costs the worker a
share of its CPU (about 4 us a call here); after its first
:data:`TIMED_FIRST` calls in a process, one call in :data:`TIMED_EVERY` is
timed and sized, every call counted, and the sums are scaled by calls over
timed calls when read (:meth:`StageRecorder.snapshot`). An untimed call
adds the stage's mean so far to what fetch leaves out as nested.
Around each whole ``fetch`` call (one batch: the chain the worker runs) it
also reads the thread's run-queue wait (``schedstat``): the time the worker
was ready to run but had no core, which tells oversubscription (more
workers than cores) from waiting on I/O. The first time each cache point
(the fetched sample, each transform's output) passes, one process per
loader (its first iteration's worker 0, or the main process with
``num_workers=0``) measures what plumber's sample cache would cost to
store and read back that sample (:mod:`plumber.torch.cachecost`), outside
every stage's time: each measurement makes and removes a directory, and a
loader whose workers start every epoch would repeat it in every worker.

With ``num_workers > 0`` the loader's ``worker_init_fn`` is replaced, for
the moment its iterator starts the workers, by a :class:`WorkerStart`: a
picklable module-level object (so ``spawn`` works) holding the user's own
function, which it calls first. In the worker it wraps the dataset's
transforms (and those a plan's ``CachedDataset`` runs from lists of its
own) and every fetcher the worker creates, and a
:class:`StatsWriter` writes the counters to a file in the session's stats
folder, atomically, every ``flush_interval_s`` while they change, at once
after an error, and at the worker's exit. The main process merges the files
(``plumber/torch/pipelines.py``). Patches made inside a worker live and die
with that worker process.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from plumber.measure.threadcpu import name_os_thread, thread_runqueue_s
from plumber.records.files import write_text_atomically
from plumber.torch.cachecost import CacheCost, sample_cache_cost
from plumber.torch.determinism import describe_transforms
from plumber.torch.sizes import nbytes_of
from plumber.torch.transforms import find_transforms

FETCH, COLLATE = "fetch", "collate"

#: Calls of each transform, in a process, that are all timed before sampling starts.
TIMED_FIRST = 64

#: After those, one call in this many is timed (and its bytes counted); every call is counted.
TIMED_EVERY = 4


class StageCounts(NamedTuple):
    """One stage's counters in one process (or summed over processes).

    A tuple, so a stats file holds it as a short JSON list, read back with
    :meth:`of` (cheap to write every flush, and to pickle).
    """

    elements: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    bytes_out: int = 0
    bytes_in: int = 0

    @classmethod
    def of(cls, row: Sequence[float]) -> StageCounts:
        """The counters of a stats file's row (a shorter row leaves the rest at zero)."""
        return cls(*row[: len(cls._fields)])

    def plus(self, other: StageCounts) -> StageCounts:
        return StageCounts(*(mine + theirs for mine, theirs in zip(self, other, strict=True)))


class RssBytes(NamedTuple):
    """A process's resident memory: at its start, its peak and its latest reading."""

    start: int = 0
    peak: int = 0
    end: int = 0


@dataclass(frozen=True)
class WorkerSnapshot:
    """The counters of one process that ran a DataLoader's chain, at one moment.

    ``worker`` is the DataLoader's worker id, or -1 for the main process;
    ``final`` says the process wrote it as it exited. A worker writes it to
    its stats file as JSON (:meth:`to_json`: plain lists and numbers, cheap
    to write at every flush), and the main process reads it back with
    :meth:`from_json`, which takes what a worker that died early left out as
    not counted.
    """

    worker: int
    pid: int = 0
    final: bool = False
    batches: int = 0
    samples: int = 0
    stages: Mapping[str, StageCounts] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    #: (op, random) of each transform the process found on its dataset.
    transforms: tuple[tuple[str, bool], ...] = ()
    rss: RssBytes = RssBytes()
    problem: str | None = None
    #: Seconds the fetching thread waited for a core; None when not measured.
    runqueue_s: float | None = None
    #: The process's HTTP request trace (:meth:`plumber.measure.nettrace.RequestTracer.snapshot`).
    network: dict[str, Any] | None = None
    #: Per cache point, what storing and reading back one of its samples cost.
    cache_costs: Mapping[str, CacheCost] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "pid": self.pid,
            "final": self.final,
            "batches": self.batches,
            "samples": self.samples,
            "stages": {k: list(v) for k, v in self.stages.items()},
            "errors": dict(self.errors),
            "transforms": [list(t) for t in self.transforms],
            "rss": list(self.rss),
            "problem": self.problem,
            "runqueue_s": self.runqueue_s,
            "network": self.network,
            "cache_costs": {k: list(v) for k, v in self.cache_costs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerSnapshot:
        runqueue = data.get("runqueue_s")
        return cls(
            worker=int(data.get("worker", -1)),
            pid=int(data.get("pid", 0)),
            final=bool(data.get("final", False)),
            batches=int(data.get("batches", 0)),
            samples=int(data.get("samples", 0)),
            stages={k: StageCounts.of(row) for k, row in data.get("stages", {}).items()},
            errors={str(k): str(v) for k, v in data.get("errors", {}).items()},
            transforms=tuple((str(t[0]), bool(t[1]) if len(t) > 1 else True)
                             for t in data.get("transforms", [])),
            rss=RssBytes(*data.get("rss", ())),
            problem=data.get("problem"),
            runqueue_s=float(runqueue) if isinstance(runqueue, (int, float)) else None,
            network=data.get("network"),
            cache_costs={str(k): CacheCost(*map(float, v))
                         for k, v in data.get("cache_costs", {}).items()},
        )

#: The recorder of the fetch running on this thread; transforms report to it.
_current = threading.local()


def transform_id(index: int) -> str:
    return f"transform_{index}"


#: The transform whose input is the fetched sample: a cache after fetch holds that.
FIRST_TRANSFORM = transform_id(0)


def error_text(exc: BaseException) -> str:
    """``"ValueError: bad sample 7"``: type and the first line of the message."""
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    return text[:300]


class StageRecorder:
    """Counters of the fetch, transform and collate stages in one process.

    ``worker`` is the DataLoader's worker id, or -1 for the main process.
    Every counter is cumulative over the process's life; ``dirty`` says
    whether anything changed since the last snapshot.
    """

    def __init__(self, worker: int, pid: int, rss_start: int = 0) -> None:
        self.worker = worker
        self.pid = pid
        #: Per stage, the fields of its StageCounts, then its calls and its timed
        #: calls, added to in place: a transform's call creates no object.
        self._counts: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}
        self.transforms: tuple[tuple[str, bool], ...] = ()
        self.batches = 0
        self.samples = 0
        self.nested_wall = 0.0
        self.nested_cpu = 0.0
        #: The last timed transform's output and its bytes: in a chain it is the
        #: next one's input, which then is not sized again.
        self.last_out: Any = None
        self.last_out_bytes = 0
        #: Seconds the fetching thread waited for a core during fetch calls;
        #: None once a read of ``schedstat`` failed (not measured).
        self.runqueue_s: float | None = 0.0
        self.rss = RssBytes(rss_start, rss_start, rss_start)
        #: Per cache point (fetch or a transform), what caching its output cost once
        #: (:func:`probe_cache_cost`); None where the cache could not store it.
        self.cache_costs: dict[str, CacheCost | None] = {}
        #: Whether this process measures them: one process per loader is enough.
        self.probes_cache_costs = True
        self.problem: str | None = None
        self.dirty = False
        self.on_error: Callable[[], None] | None = None
        #: The HTTP request tracer (``plumber.measure.nettrace``) when this runs in a worker.
        self.requests: Any = None
        self._blamed: int | None = None
        self._lock = threading.Lock()

    def add(self, stage: str, elements: int, wall: float, cpu: float,
            bytes_out: int = 0, bytes_in: int = 0, nested: bool = True) -> None:
        """Count one call of ``stage``; ``nested`` calls run inside a fetch."""
        with self._lock:
            counts = self._counts.get(stage)
            if counts is None:
                counts = self._counts[stage] = [0, 0.0, 0.0, 0, 0, 0, 0]
            counts[0] += elements
            counts[1] += wall
            counts[2] += cpu
            counts[3] += bytes_out
            counts[4] += bytes_in
            counts[5] += 1
            counts[6] += 1
            if nested:
                self.nested_wall += wall
                self.nested_cpu += cpu
            self.dirty = True

    def times_next_call(self, stage: str) -> bool:
        """Whether the coming call of transform ``stage`` is timed: each of its first
        :data:`TIMED_FIRST` calls, then one in :data:`TIMED_EVERY`."""
        counts = self._counts.get(stage)
        calls = 0 if counts is None else counts[5]
        return calls < TIMED_FIRST or calls % TIMED_EVERY == 0

    def add_untimed(self, stage: str) -> None:
        """Count one untimed call of ``stage`` (one element), nested at the stage's mean."""
        with self._lock:
            counts = self._counts[stage]
            counts[0] += 1
            counts[5] += 1
            self.nested_wall += counts[1] / counts[6]
            self.nested_cpu += counts[2] / counts[6]
            self.dirty = True

    @property
    def stages(self) -> dict[str, StageCounts]:
        """Each stage's counters so far."""
        with self._lock:
            return self._stage_counts()

    def _stage_counts(self) -> dict[str, StageCounts]:
        """Each stage's counters, its timed sums scaled to all its calls."""
        counted = {}
        for stage, (elements, wall, cpu, out, into, calls, timed) in self._counts.items():
            scale = calls / timed if timed else 1.0
            counted[stage] = StageCounts(elements, wall * scale, cpu * scale,
                                         round(out * scale), round(into * scale))
        return counted

    def probe_cache_cost(self, stage: str, sample: Any) -> None:
        """Measure, the first time only, what a sample cache after ``stage`` would cost with
        ``sample`` as its output (:func:`plumber.torch.cachecost.sample_cache_cost`).

        It runs inside a fetch, whose own time leaves it out as nested, and in
        no stage's time.
        """
        if stage in self.cache_costs or not self.probes_cache_costs:
            return
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        cost = sample_cache_cost(sample)
        with self._lock:
            self.cache_costs[stage] = cost
            self.nested_wall += time.perf_counter() - wall0
            self.nested_cpu += time.thread_time() - cpu0
            self.dirty = True

    def fail(self, stage: str, exc: BaseException) -> None:
        """Blame ``stage`` for ``exc``, unless a stage nested in it already was."""
        if self._blamed == id(exc):
            return
        self._blamed = id(exc)
        with self._lock:
            self.errors.setdefault(stage, error_text(exc))
            self.dirty = True

    def add_runqueue(self, before: float | None, after: float | None) -> None:
        """Count the run-queue wait of one ``fetch`` call, read before and after it."""
        with self._lock:
            if self.runqueue_s is None or before is None or after is None:
                self.runqueue_s = None
            else:
                self.runqueue_s += max(after - before, 0.0)

    def end_batch(self, wall: float, cpu: float, delivered: bool, failed: bool) -> None:
        """Count fetch's own time of one ``fetch`` call (nested stages already removed)."""
        self.add(FETCH, 0, wall, cpu, nested=False)
        if delivered:
            self.batches += 1
        if failed and self.on_error is not None:
            self.on_error()

    def snapshot(self, final: bool = False, rss: int | None = None) -> WorkerSnapshot:
        """The counters now (``rss`` updates peak and end)."""
        with self._lock:
            if rss is not None:
                self.rss = RssBytes(self.rss.start, max(self.rss.peak, rss), rss)
            self.dirty = False
            return WorkerSnapshot(
                worker=self.worker,
                pid=self.pid,
                final=final,
                batches=self.batches,
                samples=self.samples,
                stages=self._stage_counts(),
                errors=dict(self.errors),
                transforms=self.transforms,
                rss=self.rss,
                problem=self.problem,
                runqueue_s=self.runqueue_s,
                network=self.requests.snapshot() if self.requests is not None else None,
                cache_costs={k: v for k, v in self.cache_costs.items() if v is not None},
            )


class TimedTransform:
    """One transform of a dataset, timed while a recorded fetch runs on this thread.

    Outside a recorded fetch it is the transform itself, at the cost of one
    lookup. Pickling and copying give the user's transform back, so a
    dataset sent to a ``spawn`` worker or saved by the user carries no
    plumber object.
    """

    def __init__(self, inner: Any, stage: str) -> None:
        self._plumber_inner = inner
        self._plumber_stage = stage

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorder: StageRecorder | None = getattr(_current, "recorder", None)
        inner = self._plumber_inner
        if recorder is None:
            return inner(*args, **kwargs)
        if not recorder.times_next_call(self._plumber_stage):
            try:
                out = inner(*args, **kwargs)
            except Exception as exc:
                recorder.fail(self._plumber_stage, exc)
                raise
            recorder.add_untimed(self._plumber_stage)
            recorder.last_out = None
            return out
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            out = inner(*args, **kwargs)
        except Exception as exc:
            recorder.add(self._plumber_stage, 0, time.perf_counter() - wall0,
                         time.thread_time() - cpu0)
            recorder.fail(self._plumber_stage, exc)
            raise
        wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
        if not args:
            bytes_in = 0
        elif args[0] is recorder.last_out:
            bytes_in = recorder.last_out_bytes
        else:
            bytes_in = nbytes_of(args[0])
        recorder.last_out, recorder.last_out_bytes = out, nbytes_of(out)
        recorder.add(self._plumber_stage, 1, wall, cpu, recorder.last_out_bytes, bytes_in)
        if args and self._plumber_stage == FIRST_TRANSFORM:
            recorder.probe_cache_cost(FETCH, args[0])
        recorder.probe_cache_cost(self._plumber_stage, out)
        return out

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return _unwrapped, (self._plumber_inner,)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_plumber_"):
            raise AttributeError(name)
        return getattr(self._plumber_inner, name)

    def __repr__(self) -> str:
        return repr(self._plumber_inner)


def _unwrapped(inner: Any) -> Any:
    return inner


@dataclass
class Replaced:
    """An attribute plumber replaced with timed transforms, to put back in the main process."""

    owner: Any
    attribute: str
    original: Any
    replacement: Any

    def restore(self) -> None:
        if getattr(self.owner, self.attribute, None) is self.replacement:
            setattr(self.owner, self.attribute, self.original)


def wrap_transforms(dataset: Any) -> tuple[tuple[tuple[str, bool], ...], Replaced | None]:
    """Time each transform of ``dataset``: its (op, random) list and what was replaced.

    Transforms already wrapped (a forked worker inherits the main process's
    wrappers) are left as they are. Returns no replacement when there is
    nothing to wrap or the attribute cannot be set.
    """
    site = find_transforms(dataset)
    if site is None:
        return (), None
    described = describe_transforms(site.callables)
    if all(isinstance(t, TimedTransform) for t in site.callables):
        return described, None
    timed = [
        t if isinstance(t, TimedTransform) else TimedTransform(t, transform_id(i))
        for i, t in enumerate(site.callables)
    ]
    if site.single:
        owner, attribute, replacement = site.holder, site.attribute, timed[0]
    elif site.container is None:
        owner, attribute = site.holder, site.attribute
        replacement = type(getattr(owner, attribute))(timed)
    else:
        owner, attribute = site.container, "transforms"
        replacement = type(site.container.transforms)(timed)
    original = getattr(owner, attribute)
    try:
        setattr(owner, attribute, replacement)
    except Exception:  # noqa: BLE001 - read-only or validated: the time stays in fetch
        return described, None
    return described, Replaced(owner, attribute, original, replacement)


def wrap_cached_transforms(dataset: Any) -> list[Replaced]:
    """Time the transforms a plan's cache applies itself, as :func:`wrap_transforms` times
    the dataset's: what was replaced, to put back in the main process.

    A :class:`~plumber.torch.cache.CachedDataset` (along the ``.dataset``
    wrappers) runs the transforms before its cache point on a miss and replays
    those after it on every sample from lists of its own, not through the
    dataset's transform attribute. Unwrapped, their time went to fetch, where
    the cache what-if counted it as spared by a cache after fetch.
    """
    from plumber.torch.cache import sample_caches

    replaced = []
    for cached in sample_caches(dataset):
        for held in cached.held_transforms():
            original = getattr(held.holder, held.attribute)
            timed = list(original)
            for i in range(held.count):
                if not isinstance(timed[i], TimedTransform):
                    timed[i] = TimedTransform(timed[i], transform_id(held.first + i))
            setattr(held.holder, held.attribute, timed)
            replaced.append(Replaced(held.holder, held.attribute, original, timed))
    return replaced


def instrument_fetcher(fetcher: Any, recorder: StageRecorder) -> None:
    """Time this fetcher's ``fetch`` and its collate function into ``recorder``."""
    fetcher.collate_fn = functools.partial(
        _timed_collate, fetcher.collate_fn, recorder, bool(fetcher.auto_collation)
    )
    fetcher.fetch = functools.partial(_timed_fetch, fetcher.fetch, recorder)


def _timed_fetch(fetch: Callable[[Any], Any], recorder: StageRecorder, index: Any) -> Any:
    previous = getattr(_current, "recorder", None)
    _current.recorder = recorder
    nested_wall, nested_cpu = recorder.nested_wall, recorder.nested_cpu
    queued0 = thread_runqueue_s()
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    delivered = failed = False
    try:
        batch = fetch(index)
        delivered = True
        return batch
    except StopIteration:  # the end of an iterable dataset's share
        raise
    except Exception as exc:
        failed = True
        recorder.fail(FETCH, exc)
        raise
    finally:
        wall = time.perf_counter() - wall0 - (recorder.nested_wall - nested_wall)
        cpu = time.thread_time() - cpu0 - (recorder.nested_cpu - nested_cpu)
        _current.recorder = previous
        recorder.last_out = None
        recorder.add_runqueue(queued0, thread_runqueue_s())
        recorder.end_batch(max(wall, 0.0), max(cpu, 0.0), delivered, failed)


def _timed_collate(collate: Callable[[Any], Any], recorder: StageRecorder,
                   auto_collation: bool, data: Any) -> Any:
    samples = _count(data) if auto_collation else 1
    recorder.samples += samples
    sample = _first(data) if auto_collation else data
    if sample is not None:  # a dataset without transforms: no transform_0 measured it first
        recorder.probe_cache_cost(FETCH, sample)
    recorder.add(FETCH, samples, 0.0, 0.0, nested=False)
    bytes_in = nbytes_of(data)
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    try:
        batch = collate(data)
    except Exception as exc:
        recorder.add(COLLATE, 0, time.perf_counter() - wall0, time.thread_time() - cpu0)
        recorder.fail(COLLATE, exc)
        raise
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    recorder.add(COLLATE, 1, wall, cpu, nbytes_of(batch), bytes_in)
    return batch


def _first(data: Any) -> Any:
    """The first sample of a batch's list of samples, None when there is none to take."""
    try:
        return data[0]
    except (TypeError, LookupError):
        return None


def _count(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return 1


class StatsWriter:
    """Writes a worker's counters to its stats file while they change and at exit."""

    def __init__(self, recorder: StageRecorder, path: Path, interval_s: float) -> None:
        self.recorder = recorder
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process = _Rss()

    def start(self) -> None:
        from multiprocessing import util

        self.recorder.on_error = self.write
        # Finalizers with a priority run when a multiprocessing child exits normally.
        util.Finalize(None, self.close, exitpriority=100)
        threading.Thread(target=self._loop, name="plumber-torch-stats", daemon=True).start()
        self.write()

    def _loop(self) -> None:
        name_os_thread("plumber-torch-stats")
        while not self._stop.wait(self.interval_s):
            if self.recorder.dirty:
                self.write()

    def write(self, final: bool = False) -> None:
        with self._lock:
            data = self.recorder.snapshot(final=final, rss=self._process.rss()).to_json()
            try:
                write_text_atomically(self.path, json.dumps(data))
            except OSError:  # the session ended and removed the folder: nobody reads it
                pass

    def close(self) -> None:
        self._stop.set()
        self.write(final=True)


class _Rss:
    """This process's resident set size, read through psutil (0 when unreadable)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()

    def rss(self) -> int:
        try:
            return int(self._process.memory_info().rss)
        except Exception:  # noqa: BLE001 - memory is a detail, never a failure
            return 0


@dataclass
class WorkerStart:
    """The ``worker_init_fn`` a profiled DataLoader's workers run: the user's, then plumber's.

    Module-level and plain data, so it pickles for ``spawn`` workers as long
    as the user's own function does (the same condition as without plumber).
    """

    user_fn: Callable[[int], Any] | None
    stats_dir: str
    tag: str
    flush_interval_s: float = 0.5
    #: Whether worker 0 measures what caching each cache point's samples costs
    #: (the loader's first iteration; later ones would measure the same again).
    probe_cache_costs: bool = True

    def __call__(self, worker_id: int) -> None:
        rss = _Rss().rss()
        if self.user_fn is not None:
            self.user_fn(worker_id)
        recorder = StageRecorder(worker_id, os.getpid(), rss)
        recorder.probes_cache_costs = self.probe_cache_costs and worker_id == 0
        path = Path(self.stats_dir) / f"{self.tag}-{worker_id}-{os.getpid()}.json"
        try:
            _instrument_worker(recorder)
            recorder.requests = _trace_requests()
        except Exception as exc:  # noqa: BLE001 - profiling must never break the worker
            recorder.problem = f"worker instrumentation failed: {error_text(exc)}"
        StatsWriter(recorder, path, self.flush_interval_s).start()


def _trace_requests() -> Any:
    """Trace this worker's HTTP requests (object storage reads) for the rest of its life.

    The worker's stats file carries the trace, replay headers included, so
    the main process can probe the network with the largest GET; the stats
    folder is private to the user (``mkdtemp``) and removed once read.
    """
    from plumber.measure.nettrace import RequestTracer

    tracer = RequestTracer()
    tracer.__enter__()
    return tracer


def _instrument_worker(recorder: StageRecorder) -> None:
    """Wrap this worker's copy of the dataset's transforms and every fetcher it creates."""
    from torch.utils.data import dataloader, get_worker_info

    info = get_worker_info()
    if info is not None:
        recorder.transforms, _ = wrap_transforms(info.dataset)
        wrap_cached_transforms(info.dataset)
    kind = dataloader._DatasetKind
    create = kind.create_fetcher

    def create_fetcher(*args: Any, **kwargs: Any) -> Any:
        fetcher = create(*args, **kwargs)
        instrument_fetcher(fetcher, recorder)
        return fetcher

    kind.create_fetcher = staticmethod(create_fetcher)
