"""Apply a plan to whatever a script builds: tf.data pipelines, torch DataLoaders, or both.

Each framework's applier gets only the pipelines of its own framework, so
neither reports the other's settings as unmatched, and a framework is
imported only when the plan tunes a pipeline of it. A plan that keeps
fetched objects makes every S3 client the script creates cache its reads
(:class:`ObjectCacheApplier`), whatever the framework.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from plumber.records.kinds import is_loader_root
from plumber.records.plan import Plan, StageRef, StageSetting


def plan_appliers(plan: Plan, script: Path) -> list[Any]:
    """An applier per framework the plan has pipelines for, not yet entered."""
    appliers: list[Any] = []
    tf_pipelines = tuple(p for p in plan.pipelines if not is_loader_root(p.root.kind))
    if tf_pipelines:
        from plumber.tf.apply import PlanApplier

        appliers.append(PlanApplier(replace(plan, pipelines=tf_pipelines), script))
    if len(tf_pipelines) < len(plan.pipelines):
        from plumber.torch.apply import PlanApplier as LoaderPlanApplier

        appliers.append(LoaderPlanApplier(plan, script))
    objects = object_cache_setting(plan)
    if objects is not None:
        appliers.append(ObjectCacheApplier(objects))
    return appliers


@contextlib.contextmanager
def applying(plan: Plan, script: Path) -> Iterator[list[Any]]:
    """Enter every applier the plan needs; yields them, for reporting what they changed."""
    appliers = plan_appliers(plan, script)
    with contextlib.ExitStack() as active:
        for applier in appliers:
            active.enter_context(applier)
        yield appliers


def object_cache_setting(plan: Plan) -> StageSetting | None:
    """The setting that keeps fetched objects (a plan has at most one); None when none does."""
    return next((s for p in plan.pipelines for s in p.settings if s.object_cache), None)


@dataclass(frozen=True)
class _Applied:
    changes: tuple[str, ...]


class ObjectCacheApplier:
    """While active, every S3 client created keeps the objects it reads (a context manager).

    Reports like the framework appliers (``applied``, ``unmatched()``), with
    the cache's hits and misses once the script has run.
    """

    def __init__(self, setting: StageSetting) -> None:
        self.setting = setting
        self.cache: Any = None
        self.refused: str | None = None
        self._active: contextlib.ExitStack | None = None

    def __enter__(self) -> ObjectCacheApplier:
        from plumber.caching.objectcache import caching_new_clients

        self._active = contextlib.ExitStack()
        assert self.setting.object_cache is not None
        try:
            self.cache = self._active.enter_context(
                caching_new_clients(self.setting.object_cache)
            )
        except OSError as exc:  # an unsafe or unusable folder: the script runs without it
            self.refused = str(exc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None

    @property
    def applied(self) -> dict[StageRef, _Applied]:
        if self.refused is not None:
            return {self.setting.stage: _Applied((f"object cache not placed: {self.refused}",))}
        described = self.cache.describe() if self.cache is not None else "not entered"
        return {self.setting.stage: _Applied((f"objects read from S3 kept ({described})",))}

    def unmatched(self) -> tuple[StageSetting, ...]:
        return ()
