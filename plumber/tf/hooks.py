"""Observe every tf.data pipeline a script builds and iterates, unmodified.

While a :class:`TfHooks` context is active:

- ``DatasetV2.__init__`` records the user's source line of each stage;
- ``OwnedIterator.__init__`` registers each eager iterator (Keras creates
  several per ``fit``, some only to peek at the spec; all are watched and
  those that produced nothing are dropped later) and counts the time the
  construction took as the consumer's wait: a loop that makes a new
  iterator each epoch is blocked on the pipeline while it starts (threads,
  buffers, caches), and a tuned pipeline can cost more there than it gains;
- ``OwnedIterator._next_internal`` times the consumer: time blocked in the
  call (data stall) versus time between calls (the training step), and
  notes the end of the data (``OutOfRangeError``): that iterator read a
  whole pass, which is how an epoch loop's passes are counted when TF
  does not know the dataset's cardinality;
- ``tf.function``'s ``Function.__call__`` notes the same end when a
  compiled function given an iterator (Keras ``fit``'s train step) raises
  it;
- ``distribute`` (its module's ``_distribute``) notes which dataset each
  service read was made from, so the profile can show the stages that ran
  on the service's workers;
- a poller thread folds ``get_model_proto(iterator)`` of every live
  iterator into a :class:`ModelAccumulator` (cheap; TF keeps the model for
  autotuning anyway) and enforces the run's step/duration bounds.

Everything patched is restored on exit, also when the script raised.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from plumber.measure.callsite import user_callsite
from plumber.measure.poller import Poller
from plumber.measure.runbounds import RunBounds, ScriptStopper
from plumber.measure.steady import SteadyWindow
from plumber.records.profile import RECENT_STEPS, SourceLocation
from plumber.tf.identity import StageCounter, stage_key
from plumber.tf.modelstats import ModelAccumulator
from plumber.tf.written import is_service_read


@dataclass
class IteratorWatch:
    """What was seen of one iterator."""

    pipeline_key: int
    created_at: float
    model: ModelAccumulator = field(default_factory=ModelAccumulator)
    ref: Any = None
    python_calls: int = 0
    wait_s: float = 0.0
    step_s: float = 0.0
    timed_steps: int = 0
    timed_wait_s: float = 0.0
    timed_step_s: float = 0.0
    wait_sq: float = 0.0
    step_sq: float = 0.0
    recent_steps: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_STEPS))
    last_return: float | None = None
    last_progress_at: float | None = None
    last_root_elements: int = 0
    poll_error: str | None = None
    ended: bool = False
    steady: SteadyWindow = field(default_factory=SteadyWindow)

    @property
    def delivered(self) -> int:
        """Root elements this iterator delivered, seen from Python or in TF's model."""
        return max(self.python_calls, self.model.root_elements)


@dataclass
class WatchedPipeline:
    """A dataset object some iterator was made from, and its iterators."""

    key: int
    dataset: Any
    first_seen: float
    iterators: list[IteratorWatch] = field(default_factory=list)
    infinite: bool = False


class TfHooks:
    """Context manager installing the tf.data observation hooks."""

    def __init__(
        self,
        bounds: RunBounds | None = None,
        poll_interval_s: float = 0.25,
        infinite_default_s: float = 60.0,
        notify: Any = None,
    ) -> None:
        self.bounds = bounds or RunBounds()
        self.poll_interval_s = poll_interval_s
        self.infinite_default_s = infinite_default_s
        self.notify = notify or (lambda message: None)
        self.sources: dict[int, tuple[Any, SourceLocation]] = {}
        self.distributed: dict[int, tuple[Any, Any]] = {}
        self.counter = StageCounter()
        self.pipelines: dict[int, WatchedPipeline] = {}
        self.started_at = 0.0
        self._watches: dict[int, IteratorWatch] = {}
        self._lock = threading.Lock()
        self._poller: Poller | None = None
        self._restore: list[tuple[Any, str, Any]] = []
        self._stopper = ScriptStopper()
        self._end_of_data: type[BaseException] = StopIteration

    # -- context -----------------------------------------------------------
    def __enter__(self) -> TfHooks:
        from tensorflow.python.data.ops import dataset_ops, iterator_ops
        from tensorflow.python.eager.polymorphic_function import polymorphic_function
        from tensorflow.python.framework import errors_impl

        self.started_at = time.monotonic()
        self._end_of_data = errors_impl.OutOfRangeError
        self._patch(dataset_ops.DatasetV2, "__init__", self._wrap_dataset_init)
        self._patch(iterator_ops.OwnedIterator, "__init__", self._wrap_iterator_init)
        self._patch(iterator_ops.OwnedIterator, "_next_internal", self._wrap_next)
        self._patch(polymorphic_function.Function, "__call__", self._wrap_function_call)
        self._add_finalizer(iterator_ops.OwnedIterator)
        self._patch_distribute()
        self._poller = Poller("plumber-tf-poll", self.poll_interval_s, self._poll)
        self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._poller is not None:
            self._poller.stop()
        for owner, name, original in reversed(self._restore):
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._restore.clear()
        self.poll_all()

    def final_poll(self) -> None:
        """Stop the periodic poll and read TF's model once more, the patches left in place.

        For a run that ends while its main thread waits for good (a lost
        tf.data service): the counters are final, the process ends after.
        """
        if self._poller is not None:
            self._poller.stop()
        self.poll_all()

    def _patch(self, owner: Any, name: str, wrapper_factory: Any) -> None:
        original = owner.__dict__[name]
        self._restore.append((owner, name, original))
        setattr(owner, name, wrapper_factory(original))

    def _patch_distribute(self) -> None:
        try:
            from tensorflow.python.data.experimental.ops import data_service_ops
        except ImportError:  # a TF build without tf.data service
            return
        if "_distribute" in data_service_ops.__dict__:
            self._patch(data_service_ops, "_distribute", self._wrap_distribute)

    def _add_finalizer(self, owner: Any) -> None:
        """Poll an iterator one last time just before it is destroyed.

        Keras drops each epoch's iterator as soon as the epoch ends, often
        before the next periodic poll; its final counters are taken here,
        while its resource still exists.
        """
        hooks = self
        previous = owner.__dict__.get("__del__", _ABSENT)
        self._restore.append((owner, "__del__", previous))

        def __del__(it: Any) -> None:
            watch = hooks._watches.get(id(it))
            poller = hooks._poller
            if (watch is not None and watch.ref() is it
                    and (poller is None or not poller.stopped)):
                hooks._poll_one(watch, iterator=it)
            if previous is not _ABSENT:
                previous(it)

        owner.__del__ = __del__

    # -- wrappers ----------------------------------------------------------
    def _wrap_dataset_init(self, original: Any) -> Any:
        hooks = self

        def __init__(ds: Any, *args: Any, **kwargs: Any) -> None:
            original(ds, *args, **kwargs)
            location = user_callsite(skip=2)
            if location is None:
                return
            occurrence = hooks.counter.take(stage_key(location.file, location.line, ds))
            location = dataclasses.replace(location, occurrence=occurrence or 0)
            hooks.sources[id(ds)] = (weakref.ref(ds), location)

        return __init__

    def _wrap_distribute(self, original: Any) -> Any:
        hooks = self

        def _distribute(*args: Any, **kwargs: Any) -> Any:
            apply_fn = original(*args, **kwargs)

            def _apply_fn(dataset: Any) -> Any:
                result = apply_fn(dataset)
                read = _service_read_in(result)
                if read is not None:
                    hooks.distributed[id(read)] = (weakref.ref(read), dataset)
                return result

            return _apply_fn

        return _distribute

    def _wrap_iterator_init(self, original: Any) -> Any:
        hooks = self

        def __init__(it: Any, dataset: Any = None, components: Any = None,
                     element_spec: Any = None) -> None:
            started = time.perf_counter()
            original(it, dataset=dataset, components=components, element_spec=element_spec)
            if dataset is not None:
                watch = hooks._register(it, dataset)
                if watch is not None:
                    watch.wait_s += time.perf_counter() - started

        return __init__

    def _wrap_next(self, original: Any) -> Any:
        hooks = self
        watches, bounds, clock = self._watches, self.bounds, time.perf_counter
        stopper, end_of_data = self._stopper, self._end_of_data

        def _next_internal(it: Any) -> Any:
            # On the consumer's hot path: keep it to a few attribute updates.
            watch = watches.get(id(it))
            if watch is None or watch.ref() is not it:
                return original(it)
            stopper.reraise_lost()
            if bounds.steps is not None:
                hooks._check_steps()  # stops the loop when it asks for one too many
            called = clock()
            last = watch.last_return
            if last is not None:
                watch.step_s += called - last
            try:
                value = original(it)
            except Exception as exc:  # end of data (OutOfRangeError) or a failing stage
                watch.wait_s += clock() - called
                watch.ended = watch.ended or isinstance(exc, end_of_data)
                hooks._poll_one(watch)
                raise
            returned = watch.last_return = clock()
            wait = returned - called
            watch.wait_s += wait
            if last is not None:
                # Moments of (wait, step) pairs: how much the two rates vary.
                step = called - last
                watch.timed_steps += 1
                watch.timed_wait_s += wait
                watch.timed_step_s += step
                watch.wait_sq += wait * wait
                watch.step_sq += step * step
                watch.recent_steps.append(step)
            calls = watch.python_calls = watch.python_calls + 1
            watch.steady.step(returned, watch.wait_s)
            if calls & (calls - 1) == 0:
                # Polls at calls 1, 2, 4, 8...: short runs that end between
                # two timed polls still leave counters of every stage.
                hooks._poll_one(watch, iterator=it)
            return value

        return _next_internal

    def _wrap_function_call(self, original: Any) -> Any:
        hooks = self

        def __call__(function: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(function, *args, **kwargs)
            except hooks._end_of_data:
                hooks._note_compiled_end((*args, *kwargs.values()))
                raise

        return __call__

    def _note_compiled_end(self, arguments: tuple[Any, ...]) -> None:
        """Mark the iterator a compiled function read to its end, when it was given just one.

        With several iterators among the arguments the one that ran out is
        unknown, and none is marked: a pass is counted whole only when shown.
        """
        given = [
            watch for argument in arguments
            if (watch := self._watches.get(id(argument))) is not None and watch.ref() is argument
        ]
        if len(given) == 1:
            given[0].ended = True
            self._poll_one(given[0])

    # -- registration and polling ------------------------------------------
    def _register(self, iterator: Any, dataset: Any) -> IteratorWatch | None:
        """Watch an eager iterator of ``dataset``; None for one made in a graph."""
        from tensorflow.python.eager import context

        if not context.executing_eagerly():
            return None
        now = time.monotonic()
        key = id(dataset)
        with self._lock:
            pipeline = self.pipelines.get(key)
            if pipeline is None or pipeline.dataset is not dataset:
                pipeline = self.pipelines[key] = WatchedPipeline(
                    key=key, dataset=dataset, first_seen=now, infinite=_is_infinite(dataset)
                )
            watch = IteratorWatch(pipeline_key=key, created_at=now, ref=weakref.ref(iterator))
            pipeline.iterators.append(watch)
            self._watches[id(iterator)] = watch
        if pipeline.infinite and self.bounds.steps is None and self.bounds.duration_s is None:
            self.bounds.duration_s = now - self.started_at + self.infinite_default_s
            self.notify(
                f"the pipeline is infinite (repeat()); profiling stops after "
                f"{self.infinite_default_s:g} s: set --steps or --duration to choose"
            )
        return watch

    def source_of(self, dataset: Any) -> SourceLocation | None:
        entry = self.sources.get(id(dataset))
        if entry is not None and entry[0]() is dataset:
            return entry[1]
        return None

    def distributed_of(self, service_read: Any) -> Any:
        """The dataset ``distribute`` sent to the service ``service_read`` reads from."""
        entry = self.distributed.get(id(service_read))
        if entry is not None and entry[0]() is service_read:
            return entry[1]
        return None

    def poll_all(self) -> None:
        with self._lock:
            watches = list(self._watches.values())
        for watch in watches:
            self._poll_one(watch)

    def _poll_one(self, watch: IteratorWatch, iterator: Any = None) -> None:
        iterator = iterator if iterator is not None else watch.ref()
        if iterator is None:
            return
        try:
            import tensorflow as tf

            proto = tf.data.experimental.get_model_proto(iterator)
        except Exception as exc:  # noqa: BLE001 - iterator gone or not modelled
            watch.poll_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            return
        watch.model.fold(proto)
        if watch.model.root_elements > watch.last_root_elements:
            watch.last_root_elements = watch.model.root_elements
            watch.last_progress_at = time.monotonic()
            if watch.python_calls == 0:  # a compiled loop: progress is only seen here
                watch.steady.mark(watch.model.root_elements, watch.last_progress_at, watch.wait_s)

    def _poll(self) -> None:
        """One tick of the poller: read TF's model, then check the run's bounds."""
        self.poll_all()
        self._check_steps()
        self._check_duration()

    # -- bounds ------------------------------------------------------------
    def delivered(self) -> int:
        """Root elements delivered so far across all iterators."""
        with self._lock:
            watches = list(self._watches.values())
        return sum(w.delivered for w in watches)

    def _check_steps(self) -> None:
        steps = self.bounds.steps
        if steps is None or self.bound_reached is not None or self.delivered() < steps:
            return
        self._stopper.stop("steps")

    def _check_duration(self) -> None:
        limit = self.bounds.duration_s
        if limit is None or self.bound_reached is not None:
            return
        if time.monotonic() - self.started_at >= limit:
            self._stopper.stop("duration")

    @property
    def bound_reached(self) -> str | None:
        """The bound that stopped the script (``steps``, ``duration``), once one did."""
        return self._stopper.bound


_ABSENT = object()


def _service_read_in(dataset: Any) -> Any:
    """The service read ``distribute`` returned, under the options it may add for a job."""
    current, seen = dataset, 0
    while current is not None and seen < 4:
        if is_service_read(current):
            return current
        try:
            inputs = current._inputs()
        except Exception:  # noqa: BLE001 - a class without inputs ends the walk
            return None
        current, seen = (inputs[0] if inputs else None), seen + 1
    return None


def _is_infinite(dataset: Any) -> bool:
    try:
        import tensorflow as tf

        return int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    except Exception:  # noqa: BLE001 - cardinality unknown is not infinite
        return False
