"""What a plan's settings mean for a DataLoader's constructor arguments.

Given the keyword arguments a ``DataLoader`` is (or was) built with and the
plan for its pipeline, :func:`tune_arguments` returns the arguments with the
plan applied, what changed per stage, and the settings that name a stage
this loader does not have (the script changed since the plan was written).
The stage ids are those of ``docs/torch-pipelines.md``: ``workers`` (and
``pin_memory``) carry the loader's own knobs, ``fetch`` and
``transform_<i>`` a cache. Everything the plan does not name is kept as
the user passed it. Used by :class:`plumber.torch.apply.PlanApplier` at
construction and by ``plumber.optimize(loader)`` on a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plumber.records.kinds import CACHE_POINTS, LOADER_ROOTS
from plumber.records.plan import PipelinePlan, StageRef, StageSetting


@dataclass
class AppliedSetting:
    """A plan setting that found its stage, and what was done there."""

    setting: StageSetting
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoaderStage:
    """One stage of one DataLoader, as the report names it."""

    loader: StageRef
    stage_id: str

    def __str__(self) -> str:
        suffix = f" #{self.loader.occurrence + 1}" if self.loader.occurrence else ""
        return f"{self.stage_id} of the DataLoader at {self.loader.file}:{self.loader.line}{suffix}"


@dataclass
class Tuned:
    """The tuned arguments, what changed per stage, and the settings with no stage here."""

    arguments: dict[str, Any]
    applied: dict[LoaderStage, AppliedSetting]
    unmatched: list[StageSetting]


def same_loader(a: StageRef, b: StageRef) -> bool:
    """Whether two refs name the same DataLoader (its root may be ``pin_memory``)."""
    return (a.file, a.line, a.occurrence) == (b.file, b.line, b.occurrence)


def tune_arguments(arguments: dict[str, Any], pipeline: PipelinePlan) -> Tuned:
    """``arguments`` (all of ``DataLoader.__init__``'s, by name) with ``pipeline`` applied."""
    tuned = Tuned(dict(arguments), {}, [])
    caches: list[tuple[int, AppliedSetting]] = []
    for setting in pipeline.settings:
        cache_point = _cache_point(setting.stage_id, tuned.arguments["dataset"])
        if setting.stage_id not in LOADER_ROOTS and cache_point is None:
            tuned.unmatched.append(setting)
            continue
        applied = AppliedSetting(setting)
        tuned.applied[LoaderStage(pipeline.root, setting.stage_id)] = applied
        if setting.stage_id in LOADER_ROOTS:
            applied.changes += _loader_knobs(tuned.arguments, setting)
        else:
            applied.changes += _ignored(setting, "parallelism", "prefetch", "threads",
                                        "persistent_workers", "pin_memory")
            if setting.cache is not None and cache_point is not None:
                caches.append((cache_point, applied))
    _place_cache(tuned.arguments, caches)
    return tuned


def _cache_point(stage_id: str, dataset: Any) -> int | None:
    """``upto`` for a cache after ``stage_id``; None when the dataset has no such stage."""
    match = CACHE_POINTS.fullmatch(stage_id)
    if match is None:
        return None
    if match.group(1) is None:
        return -1
    from plumber.torch.cache import transform_count

    index = int(match.group(1))
    return index if index < transform_count(dataset) else None


def _loader_knobs(arguments: dict[str, Any], setting: StageSetting) -> list[str]:
    changes = _ignored(setting, "cache", "threads")
    before = arguments["num_workers"]
    # A stage's parallelism is max(num_workers, 1): 1 already describes 0 workers.
    if setting.parallelism is not None and not (setting.parallelism == 1 and before == 0):
        changes += _set(arguments, "num_workers", setting.parallelism)
    workers = arguments["num_workers"]
    if setting.prefetch is not None:
        if workers == 0:
            changes.append(f"prefetch {setting.prefetch} not set: prefetch_factor needs "
                           f"num_workers > 0")
        elif setting.prefetch <= 0:
            changes.append(f"prefetch_factor left at {arguments['prefetch_factor'] or 2} "
                           f"(a DataLoader has no autotuned prefetch)")
        else:
            changes += _set(arguments, "prefetch_factor", setting.prefetch)
    if setting.persistent_workers is not None:
        if workers == 0 and setting.persistent_workers:
            changes.append("persistent_workers not set: it needs num_workers > 0")
        else:
            changes += _set(arguments, "persistent_workers", setting.persistent_workers)
    if setting.pin_memory is not None:
        changes += _set(arguments, "pin_memory", setting.pin_memory)
    if workers == 0:  # torch refuses these without workers
        changes += _set(arguments, "prefetch_factor", None)
        changes += _set(arguments, "persistent_workers", False)
    return changes


def _place_cache(arguments: dict[str, Any], caches: list[tuple[int, AppliedSetting]]) -> None:
    """Wrap the dataset with the latest cache the plan places; one cache per loader."""
    if not caches:
        return
    from plumber.torch.cache import CachedDataset

    caches.sort(key=lambda c: c[0])
    *earlier, (upto, applied) = caches
    for _, other in earlier:
        other.changes.append(f"cache not placed: the cache after {applied.setting.stage_id} "
                             f"comes later and replaces it")
    location = applied.setting.cache
    try:
        arguments["dataset"] = CachedDataset(arguments["dataset"], upto=upto, location=location)
    except (TypeError, ValueError, OSError) as exc:
        applied.changes.append(f"cache not placed: {exc}")
        return
    applied.changes.append(f"cache ({location}: {arguments['dataset'].directory}) after it")


def _set(arguments: dict[str, Any], name: str, value: Any) -> list[str]:
    before = arguments[name]
    if before == value:
        return []
    arguments[name] = value
    return [f"{name}={before} -> {name}={value}"]


def _ignored(setting: StageSetting, *knobs: str) -> list[str]:
    """A note per knob the plan sets where a DataLoader has no such setting."""
    return [f"{knob} ignored: a DataLoader has no such setting at {setting.stage_id}"
            for knob in knobs if getattr(setting, knob) is not None]
