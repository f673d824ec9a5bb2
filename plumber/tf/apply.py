"""Apply a plan while the user's script builds its tf.data pipelines.

The script runs unchanged. While a :class:`PlanApplier` is active, the
construction calls (``map``, ``interleave``, ``batch``, ``prefetch``, and the
others a plan may put a cache, prefetch or thread pool after: ``take``,
``repeat``, ``shuffle``, ``with_options``...: the table
:data:`plumber.records.appliable.TF_METHODS`, which ``derive`` also consults)
look up the stage being built by its identity (file, line, kind,
occurrence: see :mod:`plumber.tf.identity`) in the plan; a match gets the
plan's parallelism, and a cache or prefetch placed right after it. Stages the plan
names but the script never built are reported as unmatched and nothing else
changes. A setting that only keeps fetched objects is not this applier's
business (:class:`plumber.tuner.appliers.ObjectCacheApplier` applies it to
every S3 client, whatever stage made it). Everything patched is restored on
exit. :class:`ServiceApplier` places a plan's offload cut the same way: the
stages below it then run on tf.data service workers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumber.measure.callsite import user_callsite
from plumber.records.appliable import TF_METHODS
from plumber.records.kinds import AUTOTUNE
from plumber.records.offload import OffloadPlan
from plumber.records.plan import Plan, StageRef, StageSetting, portable_path
from plumber.tf.identity import StageCounter, stage_key


@dataclass
class AppliedSetting:
    """A plan setting that found its stage, and what was done there."""

    setting: StageSetting
    changes: list[str] = field(default_factory=list)


class PlanApplier:
    """Context manager that builds the script's pipelines with a plan's settings."""

    def __init__(self, plan: Plan, script: Path) -> None:
        self.plan = plan
        self.script_dir = script.resolve().parent
        self.settings = {ref: setting for ref, setting in plan.settings_by_ref().items()
                         if _changes_the_pipeline(setting)}
        self.applied: dict[StageRef, AppliedSetting] = {}
        self.counter = StageCounter()
        self._restore: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> PlanApplier:
        from tensorflow.python.data.ops import dataset_ops

        dataset_class = dataset_ops.DatasetV2
        self._patch(dataset_class, "__init__", self._wrap_init)
        for method, (kind, knob) in TF_METHODS.items():
            self._patch(dataset_class, method, lambda original, k=kind, n=knob:
                        self._wrap_builder(original, k, n))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()

    def unmatched(self) -> list[StageSetting]:
        """Settings whose stage the script never built (renamed, moved, removed)."""
        return [s for ref, s in self.settings.items() if ref not in self.applied]

    def _patch(self, owner: Any, name: str, factory: Any) -> None:
        original = owner.__dict__[name]
        self._restore.append((owner, name, original))
        setattr(owner, name, factory(original))

    def _wrap_init(self, original: Any) -> Any:
        counter = self.counter

        def __init__(ds: Any, *args: Any, **kwargs: Any) -> None:
            original(ds, *args, **kwargs)
            location = user_callsite(skip=2)
            if location is not None:
                counter.take(stage_key(location.file, location.line, ds))

        return __init__

    def _wrap_builder(self, original: Any, kind: str, knob: str | None) -> Any:
        applier = self
        signature = inspect.signature(original)

        def builder(ds: Any, *args: Any, **kwargs: Any) -> Any:
            ref = applier._ref_here(kind)
            setting = applier.settings.get(ref) if ref is not None else None
            if setting is None:
                return original(ds, *args, **kwargs)
            applied = applier.applied.setdefault(ref, AppliedSetting(setting))
            bound = signature.bind(ds, *args, **kwargs)
            if setting.parallelism is not None and knob is not None:
                before = bound.arguments.get(knob)
                bound.arguments[knob] = setting.parallelism
                applied.changes.append(f"{knob}={before} -> {knob}={setting.parallelism}")
            result = original(*bound.args, **bound.kwargs)
            return applier._append(result, setting, applied)

        builder.__name__ = original.__name__
        builder.__doc__ = original.__doc__
        return builder

    def _ref_here(self, kind: str) -> StageRef | None:
        """The plan's name for the ``kind`` stage being built now, by the user's line.

        None when the applier itself builds it (a cache or prefetch it adds)
        or no line of the user's code does.
        """
        if self.counter.suppressed_here():
            return None
        location = user_callsite(skip=2)
        if location is None:
            return None
        occurrence = self.counter.peek(stage_key(location.file, location.line, kind))
        return StageRef(portable_path(location.file, self.script_dir), location.line, kind,
                        occurrence)

    def _append(self, result: Any, setting: StageSetting, applied: AppliedSetting) -> Any:
        """Add the plan's cache and prefetch after the stage, uncounted."""
        with self.counter.suppressed():
            if setting.cache is not None:
                result, where = cached(result, setting.cache)
                applied.changes.append(f"cache ({where}) after it")
            if setting.prefetch is not None:
                result = result.prefetch(setting.prefetch)
                depth = "AUTOTUNE" if setting.prefetch == AUTOTUNE else setting.prefetch
                applied.changes.append(f"prefetch({depth}) after it")
            if setting.threads is not None:
                options = type(result.options())()
                options.threading.private_threadpool_size = setting.threads
                result = result.with_options(options)
                applied.changes.append(f"thread pool of {setting.threads} threads")
        return result


def _changes_the_pipeline(setting: StageSetting) -> bool:
    """Whether the setting changes the tf.data pipeline (not only the objects it fetches)."""
    return any(value is not None for value in
               (setting.parallelism, setting.cache, setting.prefetch, setting.threads))


def cached(dataset: Any, cache: str) -> tuple[Any, str]:
    """``dataset`` with the plan's cache after it, and where that cache is.

    A file cache goes in the folder the plan names, keyed by the pipeline
    below it and the files it reads (:mod:`plumber.tf.filecache`), so a run
    never reads a cache that another pipeline or other data wrote.
    """
    if cache == "memory":
        return dataset.cache(""), "memory"
    from plumber.tf.filecache import placed_file_cache

    placed = placed_file_cache(dataset, cache)
    return dataset.cache(placed.prefix), placed.note


class ServiceApplier(PlanApplier):
    """Context manager that sends the planned cut of the script's pipelines to tf.data service.

    Right after the stage the plan's offload section names (the cut, found by
    its identity like any planned stage), it inserts
    ``distribute(processing_mode, service, max_outstanding_requests)``: the
    cut and every stage below it run on the service's workers, the stages
    above it here. ``distributed`` lists the cuts it placed, ``missed`` says
    when the script built no stage at the cut.
    """

    def __init__(self, offload: OffloadPlan, service: str, script: Path) -> None:
        super().__init__(Plan(script=str(script)), script)
        self.offload = offload
        self.service = service
        self.distributed: list[str] = []

    def missed(self) -> str | None:
        """What to say when the script built no stage at the cut, else None."""
        if self.distributed:
            return None
        return (f"plan's offload cut not found, nothing sent to the tf.data service: "
                f"{self.offload.cut} ({self.offload.stage_id})")

    def _wrap_builder(self, original: Any, kind: str, knob: str | None) -> Any:
        applier = self
        cut = self.offload.cut

        def builder(ds: Any, *args: Any, **kwargs: Any) -> Any:
            ref = applier._ref_here(kind) if kind == cut.kind else None
            result = original(ds, *args, **kwargs)
            return applier._distribute(result) if ref == cut else result

        builder.__name__ = original.__name__
        builder.__doc__ = original.__doc__
        return builder

    def _distribute(self, dataset: Any) -> Any:
        """``dataset`` read from the service's workers, uncounted."""
        import tensorflow as tf

        offload = self.offload
        with self.counter.suppressed():
            distributed = dataset.apply(tf.data.experimental.service.distribute(
                processing_mode=offload.processing_mode, service=self.service,
                max_outstanding_requests=offload.max_outstanding_requests))
        self.distributed.append(
            f"distribute({offload.processing_mode}, max_outstanding_requests="
            f"{offload.max_outstanding_requests}) to {self.service} after {offload.cut}")
        return distributed
