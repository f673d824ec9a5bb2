"""From a profile and its diagnosis to a plan (pure: no I/O, no frameworks).

Per input-bound pipeline: parallelism for every tunable stage at once
(:mod:`plumber.analyzers.allocate`), the best admissible cache from the
what-if table (the analysis already refuses caches after random stages, on
infinite streams and beyond the memory budget), and a prefetch at the end
when the pipeline has none. A consumer-bound pipeline gets no change.
"""

from __future__ import annotations

from pathlib import Path

from plumber.analyzers.allocate import allocate
from plumber.analyzers.diagnose import scene
from plumber.analyzers.results import Diagnosis
from plumber.record import Pipeline, Profile
from plumber.tuner.plan import PipelinePlan, Plan, StageRef, StageSetting

#: A cache must beat the observed rate by this factor to be planned.
CACHE_WORTH = 1.1

AUTOTUNE = -1


def derive_plan(profile: Profile, diagnoses: tuple[Diagnosis, ...], script: Path) -> Plan:
    """The plan for every pipeline of ``profile`` that has a source-located root."""
    script_dir = script.resolve().parent
    pipelines, notes = [], []
    for pipeline, diagnosis in zip(profile.pipelines, diagnoses, strict=True):
        root = pipeline.stage(pipeline.root)
        root = _written_root(pipeline) if root.source is None else root
        if root is None or root.source is None:
            notes.append(f"{pipeline.id}: its root stage has no source line; left as written")
            continue
        if not diagnosis.input_bound:
            notes.append(f"{pipeline.id}: the consumer is the bottleneck; nothing to change")
            continue
        settings, predicted = _settings(profile, pipeline, diagnosis, script_dir)
        if not settings:
            notes.append(f"{pipeline.id}: the model found no change worth making")
            continue
        pipelines.append(PipelinePlan(
            root=StageRef.of(root.source, root.kind, script_dir),
            settings=tuple(settings),
            observed_rate=diagnosis.observed_rate,
            predicted_rate=predicted,
        ))
    return Plan(script=str(script), pipelines=tuple(pipelines), notes=tuple(notes))


def _written_root(pipeline: Pipeline):
    """The outermost written stage (TF may have added one above it)."""
    stage = pipeline.stage(pipeline.root)
    while not stage.written and stage.inputs:
        stage = pipeline.stage(stage.inputs[0])
    return stage if stage.written else None


def _settings(
    profile: Profile, pipeline: Pipeline, diagnosis: Diagnosis, script_dir: Path
) -> tuple[list[StageSetting], float]:
    """The settings and the model's first-epoch rate with them.

    A cache's own predicted rate is the steady state from the second epoch.
    """
    model = scene(profile, pipeline)
    allocation = allocate(model)
    settings: dict[str, StageSetting] = {}
    for stage_id, p in allocation.parallelism.items():
        stage = pipeline.stage(stage_id)
        settings[stage_id] = StageSetting(
            stage=StageRef.of(stage.source, stage.kind, script_dir),
            stage_id=stage_id,
            parallelism=p,
            reason=allocation.reasons[stage_id],
            predicted_rate=allocation.predicted_rate,
        )
    cache = _best_cache(diagnosis)
    if cache is not None:
        stage = pipeline.stage(cache.stage_id)
        if stage.source is not None:
            previous = settings.get(stage.id)
            settings[stage.id] = StageSetting(
                stage=StageRef.of(stage.source, stage.kind, script_dir),
                stage_id=stage.id,
                parallelism=previous.parallelism if previous else None,
                cache="memory",
                reason="; ".join(r for r in (previous.reason if previous else "",
                                             cache.reason) if r),
                predicted_rate=max(cache.predicted_rate, allocation.predicted_rate),
            )
    root = _written_root(pipeline)
    needs_prefetch = root is not None and root.kind != "prefetch"
    if root is not None and root.source is not None and (needs_prefetch or allocation.threads):
        previous = settings.get(root.id)
        reasons = [previous.reason if previous else ""]
        if needs_prefetch:
            reasons.append("no prefetch at the end: overlap the pipeline with the training step")
        if allocation.threads:
            reasons.append(f"a thread pool of {allocation.threads} so the waiting calls run "
                           f"at once (tf.data's default pool has one thread per core)")
        settings[root.id] = StageSetting(
            stage=StageRef.of(root.source, root.kind, script_dir),
            stage_id=root.id,
            parallelism=previous.parallelism if previous else None,
            cache=previous.cache if previous else None,
            prefetch=AUTOTUNE if needs_prefetch else None,
            threads=allocation.threads,
            reason="; ".join(r for r in reasons if r),
            predicted_rate=previous.predicted_rate if previous else allocation.predicted_rate,
        )
    return list(settings.values()), allocation.predicted_rate


def _best_cache(diagnosis: Diagnosis):
    candidates = [
        w for w in diagnosis.what_ifs
        if w.knob == "cache" and w.feasible and w.stage_id is not None
        and w.predicted_rate > CACHE_WORTH * diagnosis.observed_rate
    ]
    return max(candidates, key=lambda w: w.predicted_rate, default=None)
