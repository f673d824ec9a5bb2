"""A plan in the words of a hand edit: what to change at which source line.

``plumber run --plan`` applies a plan without touching the script; a user
who wants the change in the code makes these edits instead. One wording
serves every place that shows a plan (the terminal summary of ``plumber
tune`` and the HTML report), so they never disagree. Pure: it reads the plan
and the profile record, never the instrumentation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumber.analyzers import text
from plumber.analyzers.objectcache import client_code
from plumber.analyzers.recommend import LIBRARY_KNOB
from plumber.records.kinds import AUTOTUNE, is_loader_root
from plumber.records.plan import PipelinePlan, StageRef, StageSetting
from plumber.records.profile import Pipeline, Profile, Stage, builder_name

#: How a DataLoader spells the settings a plan gives its ``workers`` stage.
_LOADER_ARGUMENTS = {
    "parallelism": "num_workers",
    "prefetch": "prefetch_factor",
    "persistent_workers": "persistent_workers",
    "pin_memory": "pin_memory",
}


@dataclass(frozen=True)
class SourceEdit:
    """One edit at a stage's line: the code as written (empty when adding) and the new code."""

    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.old} -> {self.new}" if self.old else self.new


def stage_edits(
    setting: StageSetting, stage: Stage | None, loader: bool = False
) -> tuple[SourceEdit, ...]:
    """:func:`setting_edits` for the profiled ``stage`` the setting changes (None: not found)."""
    if stage is None:
        return setting_edits(setting, None, loader)
    built_by = stage.source.built_by if stage.source is not None else ""
    return setting_edits(setting, stage.knobs, loader, built_by)


def setting_edits(
    setting: StageSetting, knobs: Mapping[str, Any] | None, loader: bool = False,
    built_by: str = "",
) -> tuple[SourceEdit, ...]:
    """The edits that make the code what ``setting`` asks for.

    ``knobs`` are the stage's settings as written (``Stage.knobs`` of the
    profile; None when the stage is not in it, and the old value then reads
    "(as written)"). ``loader`` says the stage belongs to a torch DataLoader,
    which spells parallelism ``num_workers`` and prefetch ``prefetch_factor``.
    ``built_by`` names the library function that built the stage
    (:attr:`plumber.records.profile.SourceLocation.built_by`): the knobs then live
    inside the library, and no argument at the user's line sets them.
    """
    if built_by:
        return _library_edits(setting, built_by, loader)
    if loader:
        return _loader_edits(setting, knobs)
    edits = []
    if setting.parallelism is not None:
        old = _old(knobs, "parallelism", _tf_value)
        edits.append(SourceEdit(f"num_parallel_calls={old}",
                                f"num_parallel_calls={_tf_value(setting.parallelism)}"))
    if setting.cache is not None:
        where = "" if setting.cache == "memory" else json.dumps(setting.cache)
        edits.append(SourceEdit("", f"add .cache({where}) after this line"))
    if setting.prefetch is not None:
        depth = _tf_value(setting.prefetch)
        edits.append(SourceEdit("", f"add .prefetch({depth}) after this line"))
    if setting.threads is not None:
        edits.append(SourceEdit(
            "", f"tf.data.Options().threading.private_threadpool_size = {setting.threads} "
                f"(apply with .with_options(options) after this line)"))
    if setting.object_cache is not None:
        edits.append(object_cache_edit(setting.object_cache))
    return tuple(edits)


def object_cache_edit(location: str) -> SourceEdit:
    """Wrapping the S3 client a fetching stage reads with, so its objects are kept."""
    old, new = client_code(json.dumps(location))
    return SourceEdit(f"{old}  (the client this stage fetches with)", new)


def _loader_edits(
    setting: StageSetting, knobs: Mapping[str, Any] | None
) -> tuple[SourceEdit, ...]:
    edits = [
        SourceEdit(f"{argument}={_old(knobs, argument, str)}", f"{argument}={value}")
        for name, argument in _LOADER_ARGUMENTS.items()
        if (value := getattr(setting, name)) is not None
    ]
    if setting.cache is not None:
        where = "in shared memory" if setting.cache == "memory" else f"in {setting.cache}"
        edits.append(SourceEdit(
            "", f"cache each sample up to {setting.stage_id} {where}, computed once per index"))
    return tuple(edits)


def _library_edits(setting: StageSetting, built_by: str, loader: bool) -> tuple[SourceEdit, ...]:
    """The changes a plan makes inside a library's stage, said as such: no edit at the line.

    The S3 client an object cache wraps is the user's, so that edit stays as written.
    """
    builder = builder_name(built_by)
    changes = []
    if setting.parallelism is not None:
        argument = "num_workers" if loader else "num_parallel_calls"
        changes.append(f"{argument}={_tf_value(setting.parallelism)}")
    if setting.cache is not None:
        changes.append(f"a cache ({setting.cache}) after it")
    if setting.prefetch is not None:
        changes.append(f"a prefetch of {_tf_value(setting.prefetch)} after it")
    if setting.threads is not None:
        changes.append(f"a thread pool of {setting.threads}")
    for name in ("persistent_workers", "pin_memory"):
        if (value := getattr(setting, name)) is not None:
            changes.append(f"{name}={value}")
    edits = []
    if changes:
        edits.append(SourceEdit("", (
            f"{', '.join(changes)} for the {setting.stage.kind} that {builder} builds "
            f"({LIBRARY_KNOB})")))
    if setting.object_cache is not None:
        edits.append(object_cache_edit(setting.object_cache))
    return tuple(edits)


def _old(knobs: Mapping[str, Any] | None, name: str, spell: Callable[[Any], str]) -> str:
    """A knob's value as written; unset knobs read as their default, ``None``."""
    return "(as written)" if knobs is None else spell(knobs.get(name))


def _tf_value(value: Any) -> str:
    """A tf.data knob as the user writes it: ``tf.data.AUTOTUNE`` for -1."""
    return "tf.data.AUTOTUNE" if value == AUTOTUNE else str(value)


def is_loader(pipeline: PipelinePlan) -> bool:
    """The plan pipeline is a torch DataLoader (its root is the pool or, pinned, the pin thread)."""
    return is_loader_root(pipeline.root.kind)


def outcome(pipeline: PipelinePlan, kept: bool) -> str:
    """What verification measured for a plan pipeline, and what became of the plan."""
    before, after = pipeline.measured_rate_before, pipeline.measured_rate_after
    predicted, steady = pipeline.predicted_rate, pipeline.measured_steady_rate_after
    if before is None or after is None:
        measured = "not measured"
    else:
        measured = f"{text.rate(before)} as written -> {text.rate(after)} tuned"
        if before > 0:
            measured += f" ({after / before:.2f}x)"
    if predicted is not None and not pipeline.predicts_these_settings:
        model = (f"; the model predicted {text.rate(predicted)} after start-up for the "
                 f"settings it chose, which these are not (changed by tune --search or by "
                 f"hand), so no prediction error is given")
    elif predicted is not None and steady:
        error = abs(predicted - steady) / steady
        model = (f"; the model predicted {text.rate(predicted)} after start-up, where the "
                 f"tuned runs measured {text.rate(steady)} (prediction error {error:.0%})")
    elif predicted is not None and after:
        error = abs(predicted - after) / after
        model = (f"; the model predicted {text.rate(predicted)} after start-up, but the tuned "
                 f"runs measured no steady state (their epochs are shorter than their "
                 f"start-up), so it is compared with their whole iteration, which includes "
                 f"it: {error:.0%} apart, a rough check")
    elif predicted is not None:
        model = f"; the model predicted {text.rate(predicted)}"
    else:
        model = ""
    verdict = "" if kept else (
        "; not faster, so the plan is dropped and the pipeline kept as written")
    return f"measured {measured}{model}{verdict}"


def profiled_pipeline(
    pipeline: PipelinePlan, profile: Profile, script_dir: Path
) -> Pipeline | None:
    """The pipeline of ``profile`` that ``pipeline`` tunes: the one with the same written root."""
    for candidate in profile.pipelines:
        root = written_root(candidate)
        if root is not None and root.source is not None and \
                StageRef.of(root.source, root.kind, script_dir) == pipeline.root:
            return candidate
    return None


def written_root(pipeline: Pipeline) -> Stage | None:
    """The outermost stage the user wrote (TF may have added one above it)."""
    stage = pipeline.stage(pipeline.root)
    while not stage.written and stage.inputs:
        stage = pipeline.stage(stage.inputs[0])
    return stage if stage.written else None
