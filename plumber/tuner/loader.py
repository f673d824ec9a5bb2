"""``plumber.optimize(loader, plan)``: a DataLoader rebuilt with a plan's settings.

A built DataLoader cannot take new settings (torch refuses changes to most
of its attributes once built), but everything needed to build an equal one
is on the object: the dataset, the sampler or batch sampler, the collate
function, the worker settings. :func:`loader_arguments` reads them back
into constructor arguments, the plan is applied to those as at
construction (:mod:`plumber.torch.settings`), and a new loader is built.
The original is left as it is.

Without a plan (:func:`tune_loader`), the loader is profiled briefly by
plumber's own loop (``plumber.profile(loader)``), a plan is derived from the
model, the loader is rebuilt with it, and both are measured the same way in
interleaved rounds: the rebuilt loader is returned only if it is faster
beyond the noise (:mod:`plumber.analyzers.speedup`), else the original object,
with a warning saying why.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

from plumber.records.kinds import is_loader_root
from plumber.records.plan import PipelinePlan, Plan, warn_not_found
from plumber.torch.settings import tune_arguments

#: Read back as they are: the loader keeps them under their argument's name.
_KEPT = ("dataset", "num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn",
         "multiprocessing_context", "generator", "prefetch_factor", "persistent_workers",
         "pin_memory_device", "in_order")

NEEDS_PLAN = (
    "optimize_loader(loader, plan) needs a plan: plumber.optimize(loader) without one "
    "derives it from a profile of the loader"
)

ITERABLE_WORKERS = (
    "plumber.optimize(loader) without a plan does not tune a DataLoader over an "
    "IterableDataset with fewer than 2 workers: each added worker iterates the whole "
    "dataset unless the dataset splits its stream by torch.utils.data.get_worker_info(), "
    "which plumber cannot check, so the tuned loader could repeat elements. Profile it with "
    "plumber.profile(loader); once the dataset splits its stream, set num_workers yourself "
    "or pass a plan: plumber.optimize(loader, plan)"
)


def optimize_loader(loader: Any, plan: Plan | None) -> Any:
    """A new DataLoader like ``loader`` with the plan's settings; warns about stages not found."""
    if plan is None:
        raise TypeError(NEEDS_PLAN)
    tuned = tune_arguments(loader_arguments(loader), _loader_plan(plan))
    warn_not_found(tuned.unmatched, stacklevel=3)
    return type(loader)(**tuned.arguments)


def tune_loader(loader: Any, steps: int | None = None, duration: float | None = 10.0) -> Any:
    """``loader`` rebuilt with a plan derived from profiling it, if that measured faster.

    Every measurement is plumber's own loop over the loader (the profile,
    then interleaved rounds as written and rebuilt), bounded by
    ``steps``/``duration`` each. The plan's root is the line that called
    plumber (a loader built earlier has no other); it is applied to this
    loader whatever its line. Returns the original object, with a warning,
    when the model proposes no change or the rebuilt loader is not faster
    beyond the noise (:func:`plumber.tuner.optimize.measured_faster`).
    """
    from torch.utils.data import IterableDataset

    from plumber.analyzers.diagnose import diagnose_all
    from plumber.capture.inprocess import profile_pipeline
    from plumber.measure.callsite import user_callsite
    from plumber.tuner.derive import derive_plan
    from plumber.tuner.optimize import measured_faster

    if isinstance(loader.dataset, IterableDataset) and loader.num_workers < 2:
        raise TypeError(ITERABLE_WORKERS)
    loader_arguments(loader)  # a loader that cannot be rebuilt is refused before profiling
    caller = user_callsite()
    script = Path(caller.file) if caller is not None else Path.cwd() / "<plumber.optimize>"
    before = profile_pipeline(loader, steps=steps, duration=duration, cpu_probe=0.0)
    plan = derive_plan(before, diagnose_all(before), script)
    if not any(is_loader_root(p.root.kind) for p in plan.pipelines):
        why = "; ".join(plan.notes) or "no DataLoader was iterated"
        warnings.warn(f"no change recommended, the loader is returned as written: {why}",
                      stacklevel=3)
        return loader
    tuned = optimize_loader(loader, plan)
    what = f"loader ({_described(plan)})"
    return tuned if measured_faster(loader, tuned, what, steps, duration) else loader


def _described(plan: Plan) -> str:
    """The plan's settings in a few words: ``workers: parallelism=4, ...``."""
    parts = []
    for setting in _loader_plan(plan).settings:
        knobs = [f"{name}={getattr(setting, name)}" for name in
                 ("parallelism", "cache", "prefetch", "persistent_workers", "pin_memory")
                 if getattr(setting, name) is not None]
        parts.append(f"{setting.stage_id}: {', '.join(knobs)}")
    return "; ".join(parts) or "no settings"


def loader_arguments(loader: Any) -> dict[str, Any]:
    """Every ``DataLoader.__init__`` argument, by name, that builds a loader like ``loader``."""
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset

    if type(loader) is not DataLoader:
        raise TypeError(
            f"{type(loader).__name__} is a DataLoader subclass, whose constructor may take "
            f"other arguments: plumber can rebuild only a torch.utils.data.DataLoader"
        )
    parameters = list(inspect.signature(DataLoader.__init__).parameters.values())[1:]
    arguments = {p.name: p.default for p in parameters}
    arguments.update({name: getattr(loader, name) for name in _KEPT})
    batches = loader.batch_sampler
    if isinstance(loader.dataset, IterableDataset):
        arguments.update(batch_size=loader.batch_size, drop_last=loader.drop_last)
    elif batches is None:  # no automatic batching: samples one by one
        arguments.update(batch_size=None, sampler=loader.sampler)
    elif (type(batches) is BatchSampler and batches.sampler is loader.sampler
          and batches.batch_size == loader.batch_size and batches.drop_last == loader.drop_last):
        # Built by the loader from batch_size, drop_last and a sampler (maybe its own).
        arguments.update(batch_size=loader.batch_size, drop_last=loader.drop_last,
                         sampler=loader.sampler)
    else:
        arguments.update(batch_sampler=batches)
    return arguments


def _loader_plan(plan: Plan) -> PipelinePlan:
    """The plan's one DataLoader pipeline (a loader built elsewhere has no call site to match)."""
    pipelines = [p for p in plan.pipelines if is_loader_root(p.root.kind)]
    if len(pipelines) != 1:
        found = ", ".join(str(p.root) for p in pipelines) or "none"
        raise ValueError(
            f"the plan must tune exactly one DataLoader to be applied to a loader, "
            f"it tunes {len(pipelines)} ({found}); write the plan for this loader's script"
        )
    return pipelines[0]
