"""Plain-language facts about a profile that every renderer states the same way.

The HTML report and the terminal summary both name the bottleneck, say
whether the run failed, and print knobs such as ``parallelism=AUTOTUNE``.
Keeping those phrasings here means the two never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from plumber.analyzers.results import Diagnosis, StageAnalysis
from plumber.records.kinds import AUTOTUNE
from plumber.records.profile import ConsumerStats, Pipeline, RunInfo, SourceLocation, Stage
from plumber.reports import format as fmt

#: What each bottleneck kind means, as a phrase that follows "bound by".
KIND_LABELS = {
    "cpu": "CPU",
    "disk": "disk read bandwidth",
    "network": "network bandwidth",
    "latency": "latency (it waits; needs more requests in flight)",
    "parallelism": "too little parallelism (cores left idle)",
    "memory": "memory",
    "consumer": "the consumer (training step), not the input pipeline",
    "service": "the tf.data service's workers",
}


#: What binds where the training step takes most of the cores it shares with the pipeline.
SHARED_CORES_LABEL = "the CPU the training step shares with the input pipeline (the step uses most)"


def bound_label(diagnosis: Diagnosis) -> str:
    """What binds a pipeline, as a phrase that follows "bound by"; unknown kinds as they are."""
    if diagnosis.step_shares_cores:
        return SHARED_CORES_LABEL
    return KIND_LABELS.get(diagnosis.bottleneck_kind, diagnosis.bottleneck_kind)


def run_failure(run: RunInfo) -> str | None:
    """A one-line statement that the run failed, or ``None`` if it did not."""
    headline = error_headline(run.error)
    error = f": {headline}" if headline else ""
    if run.exit_status != 0:
        return f"The run failed (exit status {run.exit_status}){error}"
    if run.error:
        return f"The run raised an error{error}"
    return None


def error_headline(error: str | None) -> str:
    """The line of an error that says what went wrong.

    For a Python traceback that is the last line (``ValueError: ...``);
    for anything else, the first.
    """
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def source_text(location: SourceLocation | None) -> str:
    """``file:line`` of a stage's source, or an empty string when unknown."""
    return str(location) if location is not None else ""


def knob_value(name: str, value: Any) -> str:
    """One knob as written: AUTOTUNE for -1, ``memory`` for an empty cache path."""
    if value == AUTOTUNE and name in ("parallelism", "buffer_size", "cycle_length"):
        return "AUTOTUNE"
    if name == "cache" and value == "":
        return "memory"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


#: Entries of ``Stage.knobs`` that are facts the adapter recorded, not settings
#: a user can change; they are shown as notes (``knob_note``), not as knobs.
NOT_SETTINGS = ("note", "cardinality")


def knob_items(stage: Stage) -> list[str]:
    """The stage's settings as ``name=value`` items, with the parallelism TF ran."""
    items = []
    for name, value in stage.knobs.items():
        if name in NOT_SETTINGS:
            continue
        if value is True and name in ("random", "stateful"):
            items.append(name)
            continue
        item = f"{name}={knob_value(name, value)}"
        ran = stage.stats.parallelism if stage.stats is not None else None
        if name == "parallelism" and ran is not None and ran != value:
            item += f" (ran {ran})"
        items.append(item)
    return items


def knob_note(stage: Stage) -> str:
    """The adapter's note on a stage (``fused into MapAndBatch; ...``), or an empty string."""
    note = stage.knobs.get("note")
    return note if isinstance(note, str) else ""


def unmeasured_reason(stage: Stage, analysis: StageAnalysis | None) -> str | None:
    """Why a stage has no statistics, or ``None`` when it was measured."""
    if stage.stats is not None and (analysis is None or analysis.resource != "unmeasured"):
        return None
    return stage.unmeasured_reason or (analysis.note if analysis else "") or "no statistics"


def analyses_by_stage(diagnosis: Diagnosis | None) -> Mapping[str, StageAnalysis]:
    """The diagnosis's per-stage analyses keyed by stage id (empty without one)."""
    return {a.stage_id: a for a in diagnosis.stages} if diagnosis is not None else {}


def diagnosis_for(pipeline: Pipeline, diagnoses: Sequence[Diagnosis]) -> Diagnosis | None:
    """The diagnosis of ``pipeline``, or ``None`` when it was not analysed."""
    return next((d for d in diagnoses if d.pipeline_id == pipeline.id), None)


def bottleneck_stage_id(diagnosis: Diagnosis) -> str | None:
    """The stage the bottleneck sits at, from the diagnosis or its binding bound."""
    return diagnosis.bottleneck_stage or diagnosis.bottleneck.stage_id


def bottleneck_parts(pipeline: Pipeline, diagnosis: Diagnosis) -> tuple[str, str]:
    """The bottleneck's name (stage id, or the bound's name) and where it is.

    ``where`` is ``map ParallelMapV2 at train.py:12`` for a stage, empty for
    a bound that is not a stage (the consumer, a machine resource).
    """
    stage_id = bottleneck_stage_id(diagnosis)
    stage = next((s for s in pipeline.stages if s.id == stage_id), None)
    if stage is None:
        return stage_id or diagnosis.bottleneck.name, ""
    location = source_text(stage.source)
    return stage.id, f"{stage.kind} {stage.op}" + (f" at {location}" if location else "")


def describe_bottleneck(pipeline: Pipeline, diagnosis: Diagnosis) -> str:
    """``map-0 (map ParallelMapV2 at train.py:12)``, or the bound's name."""
    name, where = bottleneck_parts(pipeline, diagnosis)
    return f"{name} ({where})" if where else name


def gain_if_fixed(diagnosis: Diagnosis) -> float | None:
    """How many times the observed rate fixing the bottleneck would give."""
    observed, fixed = diagnosis.observed_rate, diagnosis.rate_if_fixed
    if math.isnan(fixed) or not (math.isfinite(observed) and observed > 0):
        return None
    return fixed / observed


def verdict_label(diagnosis: Diagnosis) -> str:
    """``input-bound``, ``not input-bound``, or ``too close to call`` for an uncertain verdict."""
    if diagnosis.uncertain:
        return "too close to call"
    return "input-bound" if diagnosis.input_bound else "not input-bound"


def startup_text(diagnosis: Diagnosis) -> str:
    """`` (steady, after 1.2 s of start-up)``: what the observed rate leaves out (empty if none)."""
    startup = diagnosis.startup_s
    if startup is None:
        return ""
    return f" (steady, after {startup:.1f} s of start-up)"


#: How far the whole iteration's stall must be from the steady window's to be shown beside it.
STALL_APART = 0.05


def stall_window(consumer: ConsumerStats | None) -> str:
    """What the stall share covers, where start-up moved it: `` after start-up (78% with it)``.

    The stall the verdict uses is the steady window's where its wait was
    timed; a long start-up (workers importing torch) can make the whole
    iteration's read very differently, and the reader may have seen that
    one elsewhere.
    """
    if consumer is None or not consumer.stall_is_steady:
        return ""
    steady, run = consumer.stall_share, consumer.run_stall_share
    if abs(run - steady) < STALL_APART:
        return ""
    return f" after start-up ({fmt.fraction(run)} with it)"


def stage_errors(pipeline: Pipeline) -> dict[str, str]:
    """Stage id -> what it raised, with the workers it raised in: ``ValueError: bad (worker 1)``.

    The torch adapter notes each raise as ``{where} raised in {stage_id}:
    {message}``; the ``where`` of those notes names the workers.
    """
    errors = {}
    for stage in pipeline.stages:
        if not stage.error:
            continue
        marker = f" raised in {stage.id}: "
        where = [note.split(marker)[0] for note in pipeline.notes if marker in note]
        errors[stage.id] = stage.error + (f" (in {', '.join(where)})" if where else "")
    return errors


def other_notes(pipeline: Pipeline) -> tuple[str, ...]:
    """The pipeline's notes except those :func:`stage_errors` already tells."""
    markers = [f" raised in {s.id}: " for s in pipeline.stages if s.error]
    return tuple(n for n in pipeline.notes if not any(m in n for m in markers))
