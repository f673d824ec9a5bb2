"""``plumber.optimize(dataset_or_loader, plan=None)``: a tuned pipeline, in code.

A function that builds a tf.data pipeline is run again while a plan is
applied, exactly as ``plumber run --plan`` does for a script: stages are
matched by the source lines that built them, and S3 clients it makes keep
the objects they read when the plan says so. A built ``tf.data.Dataset`` is
rebuilt from its chain of Python objects with the plan's settings
(:mod:`plumber.tf.rebuild`); it keeps no source lines, so its stages are
matched by kind and order (``map-0`` is the map nearest the source). A
dataset plumber cannot rebuild faithfully comes back unchanged, with a
warning, and a plan's object cache is not applied to it (the S3 client is
hidden inside its functions: a warning says how to wrap it). Without a plan,
the pipeline is profiled briefly from plumber's own loop, a plan is derived
from the model, and the tuned pipeline is measured against it the same way,
in interleaved rounds (:func:`measured_faster`): if it is not faster beyond
the noise (:mod:`plumber.analyzers.speedup`), the pipeline is returned as
written, with a warning saying so.

A PyTorch DataLoader is rebuilt from its own attributes with the plan's
settings (:mod:`plumber.tuner.loader`). Without a plan, the loader is
profiled the same way (plumber's loop iterating it), and the rebuilt loader
is measured against it: the original object comes back, with a warning,
unless the rebuilt one is faster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plumber.measure.callsite import user_callsite
from plumber.records.plan import Plan, StageSetting, warn_not_found
from plumber.records.profile import Profile, SourceLocation, Stage

_SUPPORTED = (
    "plumber.optimize() takes a tf.data.Dataset, a torch DataLoader, or a function with "
    "no arguments that builds the tf.data pipeline"
)


def optimize(
    make_dataset: Callable[[], Any] | Any,
    plan: Plan | str | Path | None = None,
    *,
    steps: int | None = None,
    duration: float | None = 10.0,
) -> Any:
    """The dataset ``make_dataset()`` builds, with ``plan`` (or a derived one) applied.

    ``make_dataset`` may also be a built ``tf.data.Dataset``: it is rebuilt
    with the plan's settings, its stages matched by kind and order among the
    stages of that kind from the source (the plan's ``stage_id``), as a built
    dataset records no source lines; the plan must tune one pipeline. It
    comes back unchanged, with a warning, when the plan changes a stage
    below one plumber cannot make again (see :mod:`plumber.tf.rebuild`).
    ``make_dataset`` may also be a torch DataLoader: a new loader like it,
    with the plan's settings, is returned (the plan must tune one DataLoader;
    without a plan, the original object unless the new one measured faster).
    ``steps``/``duration`` bound each measurement taken when no plan is
    given: the profile the plan is derived from, then the interleaved rounds
    (as written, tuned) that decide whether it is kept.
    """
    from plumber.torch import is_loader
    from plumber.tuner.loader import optimize_loader, tune_loader

    if is_loader(make_dataset):
        if plan is None:
            return tune_loader(make_dataset, steps=steps, duration=duration)
        return optimize_loader(make_dataset, _loaded(plan))
    if _is_dataset(make_dataset):
        if plan is None:
            return _tune_dataset(make_dataset, steps, duration)
        return rewrite_dataset(make_dataset, _dataset_plan(_loaded(plan)))
    if not callable(make_dataset) or hasattr(make_dataset, "element_spec"):
        raise TypeError(_SUPPORTED)
    source = Path(inspect.getsourcefile(make_dataset) or make_dataset.__code__.co_filename)
    if plan is None:
        return _tune_and_verify(make_dataset, source, steps, duration)
    return apply_plan(make_dataset, _loaded(plan), source)


def _loaded(plan: Plan | str | Path | None) -> Plan | None:
    """The plan, checked as a plan file is: a Plan built in code passes the same checks."""
    if plan is None:
        return None
    if isinstance(plan, Plan):
        return Plan.from_dict(json.loads(plan.to_json()))
    return Plan.load(plan)


def apply_plan(make_dataset: Callable[[], Any], plan: Plan, source: Path) -> Any:
    """Build the dataset with the plan's settings; warn about settings that found no stage."""
    from plumber.tf.apply import PlanApplier
    from plumber.tuner.appliers import ObjectCacheApplier, object_cache_setting

    objects = object_cache_setting(plan)
    with PlanApplier(plan, source) as applier, contextlib.ExitStack() as active:
        if objects is not None:
            active.enter_context(ObjectCacheApplier(objects))
        dataset = make_dataset()
    warn_not_found(applier.unmatched(), stacklevel=3)
    return dataset


def _tune_and_verify(
    make_dataset: Callable[[], Any], source: Path, steps: int | None, duration: float | None
) -> Any:
    from plumber.analyzers.diagnose import diagnose_all
    from plumber.capture.inprocess import profile_pipeline
    from plumber.tuner.derive import derive_plan

    before = profile_pipeline(make_dataset, steps=steps, duration=duration)
    plan = derive_plan(before, diagnose_all(before), source)
    if not plan.pipelines:
        warnings.warn(f"no change recommended: {'; '.join(plan.notes)}", stacklevel=3)
        return make_dataset()
    if not measured_faster(make_dataset, lambda: apply_plan(make_dataset, plan, source),
                           "pipeline", steps, duration):
        return make_dataset()
    return apply_plan(make_dataset, plan, source)


def _is_dataset(obj: Any) -> bool:
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.data.ops import dataset_ops

    return isinstance(obj, dataset_ops.DatasetV2)


def _dataset_plan(plan: Plan) -> tuple[StageSetting, ...]:
    """The settings of the plan's one pipeline (a built dataset is one pipeline)."""
    if len(plan.pipelines) != 1:
        found = ", ".join(str(p.root) for p in plan.pipelines) or "none"
        raise ValueError(
            f"the plan must tune exactly one pipeline to be applied to a built dataset, "
            f"it tunes {len(plan.pipelines)} ({found})"
        )
    return plan.pipelines[0].settings


def rewrite_dataset(dataset: Any, settings: tuple[StageSetting, ...]) -> Any:
    """``dataset`` rebuilt with ``settings``, or itself, with a warning, when it cannot be."""
    from plumber.tf.rebuild import RebuildRefused, rebuild

    try:
        rebuilt = rebuild(dataset, settings)
    except RebuildRefused as exc:
        warnings.warn(f"the dataset is returned unchanged: {exc}", stacklevel=3)
        return dataset
    warn_not_found(rebuilt.unmatched, stacklevel=3)
    for text in rebuilt.not_applied:
        warnings.warn(f"plan setting not applied: {text}", stacklevel=3)
    for setting in settings:
        if setting.object_cache is not None:
            warnings.warn(
                f"plan setting not applied: the objects {setting.stage_id} fetches are not "
                f"cached, as a built dataset's S3 client is out of plumber's reach; wrap it "
                f"where it is made: plumber.objectcache.cache_object_reads(client, "
                f"location={setting.object_cache!r})",
                stacklevel=3,
            )
    return rebuilt.dataset


def _tune_dataset(dataset: Any, steps: int | None, duration: float | None) -> Any:
    """Profile the built dataset, rebuild it with the derived plan, keep it if faster."""
    from plumber.analyzers.diagnose import diagnose_all
    from plumber.capture.inprocess import profile_pipeline
    from plumber.tuner.derive import derive_plan

    caller = user_callsite() or SourceLocation(file="<dataset>", line=0)
    before = profile_pipeline(dataset, steps=steps, duration=duration)
    plan = derive_plan(_named(before, caller), diagnose_all(before), Path(caller.file))
    if not plan.pipelines:
        warnings.warn(f"no change recommended: {'; '.join(plan.notes)}", stacklevel=3)
        return dataset
    tuned = rewrite_dataset(dataset, plan.pipelines[0].settings)
    if tuned is dataset:
        return dataset
    return tuned if measured_faster(dataset, tuned, "pipeline", steps, duration) else dataset


def _named(profile: Profile, caller: SourceLocation) -> Profile:
    """The profile with each unnamed written stage named by the caller's line.

    A built dataset's stages have no source line, and a plan names stages by
    one: the line that called plumber stands for all of them, the stage's
    order among those of its kind (``map-1``: 1) as its occurrence there.
    """

    def named(stage: Stage) -> Stage:
        ordinal = stage.id.rpartition("-")[2]
        if stage.source is not None or not stage.written or not ordinal.isdigit():
            return stage
        return dataclasses.replace(stage, source=dataclasses.replace(caller,
                                                                     occurrence=int(ordinal)))

    return dataclasses.replace(profile, pipelines=tuple(
        dataclasses.replace(p, stages=tuple(named(s) for s in p.stages))
        for p in profile.pipelines
    ))


def measured_faster(
    as_written: Any, tuned: Any, what: str, steps: int | None, duration: float | None
) -> bool:
    """Whether ``tuned`` measured faster than ``as_written`` beyond the noise; warns if not.

    Both are measured by plumber's own loop (``plumber.profile``, no CPU
    probe), each run bounded by ``steps``/``duration``, in interleaved
    rounds until :func:`~plumber.analyzers.speedup.compare_rounds` decides.
    """
    from plumber.analyzers.speedup import DEFAULT_ROUNDS, Comparison, compare_rounds
    from plumber.capture.inprocess import profile_pipeline
    from plumber.tuner.verify import pipeline_rates

    def rates(target: Any) -> tuple[float, ...]:
        return pipeline_rates(profile_pipeline(target, steps=steps, duration=duration,
                                               cpu_probe=0.0))

    compared = compare_rounds(lambda: rates(as_written), lambda: rates(tuned), DEFAULT_ROUNDS,
                              lambda message: None)
    check = compared[0] if compared else Comparison((), ())
    if check.faster:
        return True
    warnings.warn(f"the tuned {what}: {check.refusal('it is returned as written')}",
                  stacklevel=4)
    return False
