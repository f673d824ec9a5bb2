"""Apply a plan to whatever a script builds: tf.data pipelines, torch DataLoaders, or both.

Each framework's applier gets only the pipelines of its own framework, so
neither reports the other's settings as unmatched, and a framework is
imported only when the plan tunes a pipeline of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from plumber.tuner.plan import Plan


def plan_appliers(plan: Plan, script: Path) -> list[Any]:
    """An applier per framework the plan has pipelines for, not yet entered."""
    from plumber.torch.settings import is_loader_pipeline

    appliers: list[Any] = []
    tf_pipelines = tuple(p for p in plan.pipelines if not is_loader_pipeline(p))
    if tf_pipelines:
        from plumber.tf.apply import PlanApplier

        appliers.append(PlanApplier(replace(plan, pipelines=tf_pipelines), script))
    if len(tf_pipelines) < len(plan.pipelines):
        from plumber.torch.apply import PlanApplier as LoaderPlanApplier

        appliers.append(LoaderPlanApplier(plan, script))
    return appliers


@contextlib.contextmanager
def applying(plan: Plan, script: Path) -> Iterator[list[Any]]:
    """Enter every applier the plan needs; yields them, for reporting what they changed."""
    appliers = plan_appliers(plan, script)
    with contextlib.ExitStack() as active:
        for applier in appliers:
            active.enter_context(applier)
        yield appliers
