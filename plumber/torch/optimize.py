"""``plumber.optimize(loader, plan)``: a DataLoader rebuilt with a plan's settings.

A built DataLoader cannot take new settings (torch refuses changes to most
of its attributes once built), but everything needed to build an equal one
is on the object: the dataset, the sampler or batch sampler, the collate
function, the worker settings. :func:`loader_arguments` reads them back
into constructor arguments, the plan is applied to those as at
construction (:mod:`plumber.torch.settings`), and a new loader is built.
The original is left as it is.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import Any

from plumber.torch.settings import is_loader_pipeline, tune_arguments
from plumber.tuner.plan import PipelinePlan, Plan

#: Read back as they are: the loader keeps them under their argument's name.
_KEPT = ("dataset", "num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn",
         "multiprocessing_context", "generator", "prefetch_factor", "persistent_workers",
         "pin_memory_device", "in_order")

NEEDS_PLAN = (
    "plumber.optimize(loader) needs a plan for a DataLoader: profiling a DataLoader from "
    "code is not supported yet. Write one with `plumber tune SCRIPT` and pass it: "
    "plumber.optimize(loader, plan='plan.json')"
)


def is_loader(candidate: Any) -> bool:
    """Whether ``candidate`` is a torch DataLoader (without importing torch)."""
    if "torch" not in sys.modules:
        return False
    from torch.utils.data import DataLoader

    return isinstance(candidate, DataLoader)


def optimize_loader(loader: Any, plan: Plan | None) -> Any:
    """A new DataLoader like ``loader`` with the plan's settings; warns about stages not found."""
    if plan is None:
        raise TypeError(NEEDS_PLAN)
    tuned = tune_arguments(loader_arguments(loader), _loader_plan(plan))
    for setting in tuned.unmatched:
        warnings.warn(
            f"plan stage not found, left as written: {setting.stage} ({setting.stage_id})",
            stacklevel=3,
        )
    return type(loader)(**tuned.arguments)


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
    pipelines = [p for p in plan.pipelines if is_loader_pipeline(p)]
    if len(pipelines) != 1:
        found = ", ".join(str(p.root) for p in pipelines) or "none"
        raise ValueError(
            f"the plan must tune exactly one DataLoader to be applied to a loader, "
            f"it tunes {len(pipelines)} ({found}); write the plan for this loader's script"
        )
    return pipelines[0]
