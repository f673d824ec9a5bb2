"""Apply a plan while the user's script builds its DataLoaders.

The script runs unchanged. While a :class:`PlanApplier` is active,
``DataLoader.__init__`` identifies the loader being built by where the user
wrote it (:func:`plumber.measure.callsite.user_callsite`) and its occurrence at that
line (kind ``workers``), exactly as the profiler names it, and looks for
the plan's pipeline with that root. A match is built with the plan's
settings (:mod:`plumber.torch.settings`); every other argument is the one
the user passed. Settings whose loader or stage the script never built are
reported as unmatched and change nothing. The same interface as
:class:`plumber.tf.apply.PlanApplier` (``applied``, ``unmatched()``), so
``plumber run --plan`` reports both alike. The patch is removed on exit.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from pathlib import Path
from typing import Any

from plumber.measure.callsite import user_callsite
from plumber.records.identity import StageCounter
from plumber.records.kinds import POOL, is_loader_root
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting, portable_path
from plumber.torch.settings import (
    AppliedSetting,
    LoaderStage,
    same_loader,
    tune_arguments,
)


class PlanApplier:
    """Context manager that builds the script's DataLoaders with a plan's settings.

    Only the plan's DataLoader pipelines are considered; torch is imported
    on entry, and when it cannot be, nothing is patched and every setting
    is reported unmatched.
    """

    def __init__(self, plan: Plan, script: Path) -> None:
        self.plan = plan
        self.script_dir = script.resolve().parent
        self.pipelines = [p for p in plan.pipelines if is_loader_root(p.root.kind)]
        self.applied: dict[LoaderStage, AppliedSetting] = {}
        self.counter = StageCounter()
        self._built: set[StageRef] = set()
        self._unmatched: list[StageSetting] = []
        self._restore: tuple[Any, Any] | None = None

    def __enter__(self) -> PlanApplier:
        if importlib.util.find_spec("torch") is None:
            return self
        from torch.utils.data import DataLoader

        original = DataLoader.__dict__["__init__"]
        self._restore = (DataLoader, original)
        DataLoader.__init__ = self._wrap_init(original)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._restore is not None:
            owner, original = self._restore
            owner.__init__ = original
            self._restore = None

    def unmatched(self) -> list[StageSetting]:
        """Settings whose loader or stage the script never built (renamed, moved, removed)."""
        missing = [s for p in self.pipelines if p.root not in self._built for s in p.settings]
        return missing + self._unmatched

    def _pipeline_for(self, ref: StageRef) -> PipelinePlan | None:
        return next((p for p in self.pipelines if same_loader(p.root, ref)), None)

    def _wrap_init(self, original: Any) -> Any:
        applier = self
        signature = inspect.signature(original)
        parameters = list(signature.parameters.values())[1:]

        @functools.wraps(original)
        def __init__(loader: Any, *args: Any, **kwargs: Any) -> None:
            location = user_callsite(skip=2)
            occurrence = (None if location is None else
                          applier.counter.take((location.file, location.line, POOL)))
            if location is None or occurrence is None:
                return original(loader, *args, **kwargs)
            ref = StageRef(portable_path(location.file, applier.script_dir), location.line,
                           POOL, occurrence)
            pipeline = applier._pipeline_for(ref)
            if pipeline is None:
                return original(loader, *args, **kwargs)
            bound = signature.bind(loader, *args, **kwargs).arguments
            tuned = tune_arguments({p.name: bound.get(p.name, p.default) for p in parameters},
                                   pipeline)
            applier._built.add(pipeline.root)
            applier.applied.update(tuned.applied)
            applier._unmatched += tuned.unmatched
            return original(loader, **tuned.arguments)

        __init__.__doc__ = original.__doc__
        return __init__
