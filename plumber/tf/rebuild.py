"""Rebuild a built ``tf.data.Dataset`` with a plan's settings, from its Python objects.

A built dataset is a chain of Python objects: each holds its input
(``_input_dataset``, or ``_inputs()`` for zip and concatenate), the
arguments it was made with as tensors (``_batch_size``, ``_num_parallel_calls``,
``_count``...) and, for a stage that runs a function, the traced function
(``_map_func.function``, a concrete function on the flattened element).
Walking the chain from the source up, a stage the plan gives parallelism is
made again with it; every stage above a changed one is made again on its
new input exactly as it was, its traced function called again (same graph,
same captured tensors and variables, same random seeds) and its arguments
reused; the part below the lowest changed stage is the original objects,
shared. A cache, prefetch or thread pool the plan places after a stage is
added on top of it (the stage itself is kept).

A built dataset keeps no record of the source lines that built it, so a
plan's stage is found by its id: its kind and its order among the stages of
that kind counted from the source (``map-0`` is the map nearest the
source), which is how a profile of the same pipeline names it.

Only the classes in :func:`_rebuilders` are made again. A stage of any
other class is kept as it is when nothing below it changes; when the plan
changes something below it, :class:`RebuildRefused` is raised rather than
return a pipeline that might yield other elements. A stage made sequential
-> parallel gets ``deterministic=True`` (a sequential stage kept its order),
and a parallel interleave made again is deterministic too (TF keeps no
record of what it was given; a deterministic order is one it allowed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from plumber.records.plan import StageSetting
from plumber.tf.apply import cached
from plumber.tf.written import WrittenStage, dataset_kind, read_written

#: Makes a stage again on new inputs, with new parallelism (None: as it was).
Rebuilder = Callable[[Any, list[Any], int | None], Any]


class RebuildRefused(Exception):
    """The dataset cannot be rebuilt faithfully; the message says which stage and why."""


@dataclass
class Rebuilt:
    """The rebuilt dataset, the settings that found no stage, and those that do not apply."""

    dataset: Any
    unmatched: list[StageSetting] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)


def rebuild(dataset: Any, settings: Iterable[StageSetting]) -> Rebuilt:
    """``dataset`` with ``settings`` applied; raises :class:`RebuildRefused`."""
    stages = read_written(dataset, lambda _: None).walk()
    _check_read(stages)
    by_id = {stage.id: stage for stage in stages}
    result = Rebuilt(dataset)
    wanted: dict[str, StageSetting] = {}
    for setting in settings:
        stage = by_id.get(setting.stage_id)
        if stage is None or stage.kind != setting.stage.kind:
            result.unmatched.append(setting)
        else:
            wanted[stage.id] = setting
    made: dict[int, Any] = {}
    for stage in stages:
        old = stage.dataset
        inputs = [made[id(child.dataset)] for child in stage.inputs]
        setting = wanted.get(stage.id)
        parallelism = setting.parallelism if setting is not None else None
        if parallelism is not None and not _takes_parallelism(old):
            result.not_applied.append(f"parallelism {parallelism} of {stage.id} "
                                      f"({type(old).__name__} has none)")
            parallelism = None
        below_changed = any(new is not child.dataset
                            for new, child in zip(inputs, stage.inputs, strict=True))
        new = old
        if below_changed or parallelism is not None:
            new = _remake(stage.id, old, inputs, parallelism)
        if setting is not None:
            new = _append(new, setting)
        made[id(old)] = new
    result.dataset = made[id(dataset)]
    return result


def _check_read(stages: list[WrittenStage]) -> None:
    """Refuse a chain whose Python objects and graph nodes were paired out of step.

    Stage ids come from the serialized graph, paired with the Python objects
    top down; an object with no node of its own (``unbatch()`` adds one)
    shifts the pairing, and then an id would name the wrong object.
    """
    for stage in stages:
        if dataset_kind(stage.dataset) != stage.kind:
            raise RebuildRefused(
                f"its stages could not be read reliably: {stage.id} ({stage.op} in the graph) "
                f"is a {type(stage.dataset).__name__}"
            )


def _remake(stage_id: str, old: Any, inputs: list[Any], parallelism: int | None) -> Any:
    rebuilder = _rebuilders().get(type(old))
    if rebuilder is None:
        raise RebuildRefused(
            f"{stage_id} is a {type(old).__name__}, which plumber cannot make again, "
            f"and the plan changes a stage below it"
        )
    try:
        new = rebuilder(old, inputs, parallelism)
    except (AttributeError, TypeError, ValueError) as exc:  # a TF whose classes differ
        raise RebuildRefused(f"{stage_id} ({type(old).__name__}) could not be made again: "
                             f"{type(exc).__name__}: {exc}") from exc
    if new.element_spec != old.element_spec:
        raise RebuildRefused(f"{stage_id} made again yields {new.element_spec}, "
                             f"not {old.element_spec}")
    return new


def _append(dataset: Any, setting: StageSetting) -> Any:
    """The plan's cache, prefetch and thread pool after the stage, as ``plumber run`` adds them."""
    if setting.cache is not None:
        dataset, _ = cached(dataset, setting.cache)
    if setting.prefetch is not None:
        dataset = dataset.prefetch(setting.prefetch)
    if setting.threads is not None:
        options = type(dataset.options())()
        options.threading.private_threadpool_size = setting.threads
        dataset = dataset.with_options(options)
    return dataset


def _takes_parallelism(dataset: Any) -> bool:
    from tensorflow.python.data.ops import batch_op, interleave_op, map_op

    if isinstance(dataset, map_op._MapDataset):
        return not dataset._force_synchronous
    return isinstance(dataset, (map_op._ParallelMapDataset, batch_op._BatchDataset,
                                batch_op._ParallelBatchDataset, interleave_op._InterleaveDataset,
                                interleave_op._ParallelInterleaveDataset))


def _replay(wrapper: Any, input_spec: Any) -> Callable[..., Any]:
    """A function calling ``wrapper``'s traced function, for a new stage to trace.

    The traced function takes and returns flat tensor lists; tf.data calls
    a stage's function with the element unpacked when it is a tuple.
    """
    from tensorflow.python.data.util import structure

    traced = wrapper.function

    def replay(*args: Any) -> Any:
        element = args if type(input_spec) is tuple else args[0]
        flat = traced(*structure.to_tensor_list(input_spec, element))
        return structure.from_compatible_tensor_list(wrapper.output_structure, flat)

    return replay


def _deterministic(dataset: Any) -> bool | None:
    return {"true": True, "false": False}.get(dataset._deterministic)


def _map(old: Any, inputs: list[Any], parallelism: int | None) -> Any:
    from tensorflow.python.data.ops import map_op

    (source,) = inputs
    func = _replay(old._map_func, old._input_dataset.element_spec)
    common = {"use_inter_op_parallelism": old._use_inter_op_parallelism,
              "preserve_cardinality": old._preserve_cardinality, "name": old._name}
    sequential = type(old) is map_op._MapDataset
    if sequential and parallelism is None:
        return map_op._MapDataset(source, func, force_synchronous=old._force_synchronous,
                                  **common)
    calls = old._num_parallel_calls if parallelism is None else parallelism
    return map_op._ParallelMapDataset(
        source, func, calls, True if sequential else _deterministic(old),
        use_unbounded_threadpool=getattr(old, "_use_unbounded_threadpool", False), **common,
    )


def _batch(old: Any, inputs: list[Any], parallelism: int | None) -> Any:
    from tensorflow.python.data.ops import batch_op

    (source,) = inputs
    sequential = type(old) is batch_op._BatchDataset
    if sequential and parallelism is None:
        return batch_op._BatchDataset(source, old._batch_size, old._drop_remainder,
                                      name=old._name)
    calls = old._num_parallel_calls if parallelism is None else parallelism
    return batch_op._ParallelBatchDataset(
        source, old._batch_size, old._drop_remainder, calls,
        True if sequential else _deterministic(old), name=old._name,
    )


def _interleave(old: Any, inputs: list[Any], parallelism: int | None) -> Any:
    from tensorflow.python.data.ops import interleave_op

    (source,) = inputs
    func = _replay(old._map_func, old._input_dataset.element_spec)
    if type(old) is interleave_op._InterleaveDataset:
        if parallelism is None:
            return interleave_op._InterleaveDataset(source, func, old._cycle_length,
                                                    old._block_length, name=old._name)
        return interleave_op._ParallelInterleaveDataset(
            source, func, old._cycle_length, old._block_length, parallelism,
            deterministic=True, name=old._name,
        )
    return interleave_op._ParallelInterleaveDataset(
        source, func, old._cycle_length, old._block_length,
        old._num_parallel_calls if parallelism is None else parallelism,
        old._buffer_output_elements, old._prefetch_input_elements,
        deterministic=True, name=old._name,
    )


def _flat_map(old: Any, inputs: list[Any], _: int | None) -> Any:
    from tensorflow.python.data.ops import flat_map_op

    func = _replay(old._map_func, old._input_dataset.element_spec)
    return flat_map_op._FlatMapDataset(inputs[0], func, name=old._name)


def _filter(old: Any, inputs: list[Any], _: int | None) -> Any:
    from tensorflow.python.data.ops import filter_op

    func = _replay(old._predicate, old._input_dataset.element_spec)
    return filter_op._FilterDataset(inputs[0], func, name=old._name)


def _shuffle(old: Any, inputs: list[Any], _: int | None) -> Any:
    """The shuffle again, refused unless its two seeds come out the same.

    TF derives the seeds from the global seed and the op seed at build time
    (both 0: no seed at all); the op seed is kept (``_seed2``), so they
    match while the global seed is what it was.
    """
    from tensorflow.python.data.ops import shuffle_op

    seeds = (int(old._seed), int(old._seed2))
    new = shuffle_op._ShuffleDataset(inputs[0], old._buffer_size,
                                     seed=None if seeds == (0, 0) else seeds[1],
                                     reshuffle_each_iteration=old._reshuffle_each_iteration,
                                     name=old._name)
    if (int(new._seed), int(new._seed2)) != seeds:
        raise RebuildRefused("a shuffle made again would get other seeds (the global seed "
                             "changed since it was built)")
    return new


def _prefetch(old: Any, inputs: list[Any], _: int | None) -> Any:
    """The prefetch again; its depth as a number, which TF compares with AUTOTUNE."""
    from tensorflow.python.data.ops import prefetch_op

    return prefetch_op._PrefetchDataset(inputs[0], int(old._buffer_size), name=old._name)


def _unchanged_structure(make: Callable[..., Any], *attrs: str) -> Rebuilder:
    """A rebuilder for a one-input stage made from the given attributes."""

    def rebuild_one(old: Any, inputs: list[Any], _: int | None) -> Any:
        return make(inputs[0], *(getattr(old, a) for a in attrs), name=old._name)

    return rebuild_one


def _zip(old: Any, inputs: list[Any], _: int | None) -> Any:
    from tensorflow.python.data.ops import zip_op
    from tensorflow.python.util import nest

    return zip_op._ZipDataset(nest.pack_sequence_as(old._datasets, inputs), name=old._name)


def _concatenate(old: Any, inputs: list[Any], _: int | None) -> Any:
    from tensorflow.python.data.ops import concatenate_op

    return concatenate_op._ConcatenateDataset(*inputs, name=old._name)


@functools.cache
def _rebuilders() -> dict[type, Rebuilder]:
    """The dataset classes plumber makes again, each with how (TF 2.x class names)."""
    from tensorflow.python.data.ops import (
        batch_op,
        cache_op,
        concatenate_op,
        dataset_ops,
        filter_op,
        flat_map_op,
        interleave_op,
        map_op,
        prefetch_op,
        repeat_op,
        shuffle_op,
        skip_op,
        take_op,
        unbatch_op,
        zip_op,
    )

    return {
        map_op._MapDataset: _map,
        map_op._ParallelMapDataset: _map,
        batch_op._BatchDataset: _batch,
        batch_op._ParallelBatchDataset: _batch,
        interleave_op._InterleaveDataset: _interleave,
        interleave_op._ParallelInterleaveDataset: _interleave,
        flat_map_op._FlatMapDataset: _flat_map,
        filter_op._FilterDataset: _filter,
        shuffle_op._ShuffleDataset: _shuffle,
        prefetch_op._PrefetchDataset: _prefetch,
        cache_op.CacheDataset: _unchanged_structure(cache_op.CacheDataset, "_filename"),
        repeat_op._RepeatDataset: _unchanged_structure(repeat_op._RepeatDataset, "_count"),
        take_op._TakeDataset: _unchanged_structure(take_op._TakeDataset, "_count"),
        skip_op._SkipDataset: _unchanged_structure(skip_op._SkipDataset, "_count"),
        unbatch_op._UnbatchDataset: _unchanged_structure(unbatch_op._UnbatchDataset),
        dataset_ops._OptionsDataset: _unchanged_structure(dataset_ops._OptionsDataset,
                                                          "_options_attr"),
        zip_op._ZipDataset: _zip,
        concatenate_op._ConcatenateDataset: _concatenate,
    }
