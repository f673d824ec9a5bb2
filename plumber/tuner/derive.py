"""From a profile and its diagnosis to a plan (pure: no I/O, no frameworks).

Per input-bound pipeline: parallelism for every tunable stage at once
(:mod:`plumber.analyzers.allocate`), the best admissible cache from the
what-if table (the analysis already refuses caches after random stages, on
infinite streams, for a single pass and beyond the memory and disk budgets;
its rate once full is taken with the plan's parallelism; a cache that would
not raise the rate averaged over the run's passes, its filling pass slowed
as the analysis found, is left out with a note), and a prefetch at the end
when the pipeline has none, as deep as the spread of producer and consumer
times asks (:mod:`plumber.analyzers.prefetch`). A
worker pool (a torch DataLoader) gets its worker count within the memory its
workers take and the batches of an epoch (an iterable dataset keeps its
count: more workers could repeat its stream), persistent workers when it is
iterated more than once, a ``prefetch_factor`` from the same depth rule, and
pinned memory when a GPU is present.
A consumer-bound pipeline gets no change, unless the step binds through the
cores it shares with the pipeline (:attr:`Diagnosis.step_shares_cores`): CPU
the pipeline stops using then goes to the step, so a cache pays there as
``plumber profile`` recommends, and the verification measures it. Nor does
a pipeline whose verdict is too close to call (the pipeline's and the step's
bounds, the shared cores counted as the step's where it takes most of them,
within the noise: :func:`plumber.analyzers.verdict.too_close_to_call`); the
note says why in the verdict's own words, the ones ``plumber profile`` prints.

Every setting is placed at a stage the appliers can find
(:func:`plumber.records.appliable.appliable`): a cache the analysis would put
after a zip or a source is not planned, and a pipeline that ends in a stage
no plan can extend (a ``zip``) gets no prefetch or thread pool there, with a
note saying to add one by hand.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from plumber.analyzers import text
from plumber.analyzers.allocate import Allocation, allocate, with_parallelism
from plumber.analyzers.bounds import compute_bounds, rate_of
from plumber.analyzers.cache import MEMORY_BUDGET, average_rate, passes, steady_rate_with
from plumber.analyzers.diagnose import scene
from plumber.analyzers.objectcache import KNOB as OBJECT_CACHE
from plumber.analyzers.objectcache import reads_per_object, steady_rate
from plumber.analyzers.prefetch import PrefetchDepth, prefetch_depth_for
from plumber.analyzers.results import Diagnosis, WhatIf
from plumber.analyzers.verdict import too_close_to_call
from plumber.records.appliable import appliable
from plumber.records.kinds import AUTOTUNE, POOL
from plumber.records.plan import (
    PipelinePlan,
    Plan,
    StageRef,
    StageSetting,
    settings_fingerprint,
)
from plumber.records.profile import Pipeline, Profile, Stage

#: A cache must beat the observed rate by this factor to be planned.
CACHE_WORTH = 1.1


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
        planned = diagnosis.input_bound or diagnosis.step_shares_cores
        if not planned or too_close_to_call(scene(profile, pipeline)):
            notes.append(f"{pipeline.id}: nothing to change. {diagnosis.summary}")
            continue
        settings, predicted, unplanned = _settings(profile, pipeline, diagnosis, script_dir)
        notes += [f"{pipeline.id}: {note}" for note in unplanned]
        if not settings:
            notes.append(f"{pipeline.id}: the model found no change worth making")
            continue
        pipelines.append(PipelinePlan(
            root=StageRef.of(root.source, root.kind, script_dir),
            settings=tuple(settings),
            observed_rate=diagnosis.observed_rate,
            predicted_rate=predicted,
            predicted_for=settings_fingerprint(settings),
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
) -> tuple[list[StageSetting], float, list[str]]:
    """The settings, the model's rate with them (averaged over the run's passes), and
    notes on what the model wanted but no plan can apply.

    A cache's setting carries its rate once full (from the second pass on).
    Where the step shares the cores with the pipeline, only what takes CPU
    off the pipeline is planned (:func:`_fewer_calls_only`): no prefetch, no
    more calls, no pinned memory, none of which frees a core for the step.
    """
    model = scene(profile, pipeline)
    cheaper_only = diagnosis.step_shares_cores
    allocation = allocate(model)
    if cheaper_only:
        allocation = _fewer_calls_only(model, allocation)
    rate = allocation.predicted_rate
    settings: dict[str, StageSetting] = {}
    unplanned: list[str] = []
    for stage_id, p in allocation.parallelism.items():
        stage = pipeline.stage(stage_id)
        if not appliable(pipeline, stage):
            unplanned.append(f"parallelism {p} for {stage_id} ({stage.kind}) is not planned: "
                             f"a plan cannot find that stage; set it by hand")
            continue
        settings[stage_id] = StageSetting(
            stage=StageRef.of(stage.source, stage.kind, script_dir),
            stage_id=stage_id,
            parallelism=p,
            reason=allocation.reasons[stage_id],
            predicted_rate=allocation.predicted_rate,
        )
    if _pool(pipeline) is not None:
        _bound_workers(profile, pipeline, settings)
    cache = _best_cache(pipeline, diagnosis)
    cache_bytes = 0.0
    if cache is not None and cache.knob == OBJECT_CACHE:
        rate, cache_bytes = _add_object_cache(
            profile, pipeline, model, allocation, cache, settings, script_dir)
    elif cache is not None:
        stage = pipeline.stage(cache.stage_id)
        full = max(steady_rate_with(model, stage.id, allocation.parallelism),
                   allocation.predicted_rate)
        cached_rate = average_rate(passes(model, stage) or 1.0,
                                   allocation.predicted_rate * _filling_share(cache, model), full)
        if cached_rate <= allocation.predicted_rate:
            unplanned.append(
                f"the cache after {stage.id} is not planned: with the plan's other settings "
                f"the run would average {text.rate(cached_rate)} with it against "
                f"{text.rate(allocation.predicted_rate)} without it")
        elif stage.source is not None:
            previous = settings.get(stage.id)
            settings[stage.id] = StageSetting(
                stage=StageRef.of(stage.source, stage.kind, script_dir),
                stage_id=stage.id,
                parallelism=previous.parallelism if previous else None,
                cache=_cache_location(profile, pipeline, stage.id, cache.value, script_dir),
                reason="; ".join(r for r in (previous.reason if previous else "",
                                             cache.reason) if r),
                predicted_rate=full,
            )
            rate = cached_rate
            cache_bytes = _size_in_memory(model, stage) if cache.value == "memory" else 0.0
    depth = None if cheaper_only else prefetch_depth_for(
        pipeline, _producer_rate(model, allocation), max(model.memory_budget - cache_bytes, 0.0)
    )
    pool = _pool(pipeline)
    if pool is not None:
        pin = bool(profile.machine.gpus) and not cheaper_only
        _pool_options(pipeline, pool, settings, script_dir, depth, pin)
        return list(settings.values()), rate, unplanned
    root = _written_root(pipeline)
    needs_prefetch = root is not None and root.kind != "prefetch" and not cheaper_only
    if root is not None and (needs_prefetch or allocation.threads) and \
            not appliable(pipeline, root):
        wanted = " and ".join(w for w, needed in (("a prefetch", needs_prefetch),
                                                  ("a thread pool", allocation.threads))
                              if needed)
        unplanned.append(f"{wanted} at the end is not planned: the pipeline ends in "
                         f"{root.id} ({root.kind}), after which a plan cannot add one; "
                         f"add it there by hand")
    elif root is not None and (needs_prefetch or allocation.threads):
        previous = settings.get(root.id)
        reasons = [previous.reason if previous else ""]
        if needs_prefetch:
            reasons.append("no prefetch at the end: overlap the pipeline with the training step"
                           + (f"; {depth.reason}" if depth is not None else ""))
        if allocation.threads:
            reasons.append(f"a thread pool of {allocation.threads} so the waiting calls run "
                           f"at once (tf.data's default pool has one thread per core)")
        prefetch = None
        if needs_prefetch:
            prefetch = AUTOTUNE if depth is None else depth.depth or None
        settings[root.id] = StageSetting(
            stage=StageRef.of(root.source, root.kind, script_dir),
            stage_id=root.id,
            parallelism=previous.parallelism if previous else None,
            cache=previous.cache if previous else None,
            object_cache=previous.object_cache if previous else None,
            prefetch=prefetch,
            threads=allocation.threads,
            reason="; ".join(r for r in reasons if r),
            predicted_rate=previous.predicted_rate if previous else allocation.predicted_rate,
        )
    return list(settings.values()), rate, unplanned


def _add_object_cache(
    profile: Profile,
    pipeline: Pipeline,
    model,
    allocation,
    what_if: WhatIf,
    settings: dict[str, StageSetting],
    script_dir: Path,
) -> tuple[float, float]:
    """Keep the fetched objects at the fetching stage; the rate over the run's reads, and
    the bytes the cache takes in memory.

    With the planned parallelism the first pass fetches as fast as the
    allocation allows; from the second on, no stage waits on the network.
    """
    where = what_if.value
    stage = pipeline.stage(what_if.stage_id)
    steady = steady_rate(model, allocation.applied_to(model.analyses), where)
    full = max(steady, allocation.predicted_rate)
    previous = settings.get(stage.id)
    location = "memory" if where == "memory" else str(
        _cache_folder(profile, script_dir) / f"{_script_name(profile)}-{pipeline.id}-objects"
    )
    settings[stage.id] = StageSetting(
        stage=StageRef.of(stage.source, stage.kind, script_dir),
        stage_id=stage.id,
        parallelism=previous.parallelism if previous else None,
        object_cache=location,
        reason="; ".join(r for r in (previous.reason if previous else "", what_if.reason) if r),
        predicted_rate=full,
    )
    rate = average_rate(reads_per_object(model), allocation.predicted_rate, full)
    held = float(model.network.object_bytes) if where == "memory" else 0.0
    return rate, held


def _fewer_calls_only(model, allocation: Allocation) -> Allocation:
    """Of ``allocation``, only the stages it gives fewer calls, and the model's rate with them.

    Fewer calls to an oversubscribed stage spare the cores its threads or
    workers fought over; more calls, and a thread pool for them, take none
    off the pipeline.
    """
    now = {a.stage_id: a.parallelism for a in model.analyses}
    fewer = {stage_id: p for stage_id, p in allocation.parallelism.items()
             if p < now.get(stage_id, math.inf)}
    walls = {stage_id: wall for stage_id, wall in allocation.walls.items() if stage_id in fewer}
    analyses = with_parallelism(model.analyses, fewer, walls)
    return Allocation(
        parallelism=fewer,
        reasons={stage_id: allocation.reasons[stage_id] for stage_id in fewer},
        predicted_rate=rate_of(compute_bounds(analyses, model.limits)),
        walls=walls,
    )


def _producer_rate(model, allocation) -> float:
    """What the pipeline could deliver with the allocation if the step took no time."""
    analyses = allocation.applied_to(model.analyses)
    limits = dataclasses.replace(model.limits, consumer_rate=None)
    return rate_of(compute_bounds(analyses, limits))


def _size_in_memory(model, stage: Stage) -> float:
    """Bytes an in-memory cache after ``stage`` holds (0 when unknown)."""
    epochs = passes(model, stage)
    stats = stage.stats
    if not epochs or stats is None or stats.elements <= 0:
        return 0.0
    return stats.bytes_produced / epochs


def _filling_share(cache: WhatIf, model) -> float:
    """How much the pass that fills ``cache`` keeps of the rate without it (1: all of it;
    less where a sample cache's writes slow it), as the model found it as run."""
    first = cache.first_pass_rate
    if first is None or not model.predicted_rate > 0:
        return 1.0
    return min(first / model.predicted_rate, 1.0)


def _best_cache(pipeline: Pipeline, diagnosis: Diagnosis):
    """The fastest feasible cache worth planning, at a stage a plan can find.

    The objects' cache is applied to every S3 client the script makes,
    whatever its stage, so its stage needs only a source line.
    """
    def placeable(w: WhatIf) -> bool:
        stage = pipeline.stage(w.stage_id)
        return appliable(pipeline, stage) or (w.knob == OBJECT_CACHE and
                                             stage.source is not None)

    candidates = [
        w for w in diagnosis.what_ifs
        if w.knob in ("cache", OBJECT_CACHE) and w.feasible and w.stage_id is not None
        and w.predicted_rate > CACHE_WORTH * diagnosis.observed_rate and placeable(w)
    ]
    return max(candidates, key=lambda w: w.predicted_rate, default=None)


def _pool(pipeline: Pipeline) -> Stage | None:
    """The pipeline's worker pool (a torch DataLoader), if it has one."""
    return next((s for s in pipeline.stages if s.kind == POOL), None)


def _bound_workers(
    profile: Profile, pipeline: Pipeline, settings: dict[str, StageSetting]
) -> None:
    """Cap a pool's new worker count by the workers' memory and the batches of an epoch.

    Each worker is a process holding its own copy of what it touched of the
    dataset; the largest resident set seen stands for every added worker. A
    worker makes whole batches, so more workers than an epoch has batches
    only start processes that have nothing to do.
    """
    pool = _pool(pipeline)
    setting = settings.get(pool.id) if pool is not None else None
    if pool is None or setting is None or setting.parallelism is None:
        return
    if pool.knobs.get("map_style") is False:
        # Every worker runs the whole stream of an iterable dataset unless the dataset
        # splits it with get_worker_info(), which plumber cannot see: more workers could
        # repeat elements, so the count stays as written.
        del settings[pool.id]
        return
    peaks = [w.rss_peak_bytes for w in pipeline.workers if w.rss_peak_bytes > 0]
    if peaks:
        budget = MEMORY_BUDGET * profile.machine.memory_available_bytes
        most = max(1, int(budget // max(peaks)))
        if setting.parallelism > most:
            setting = dataclasses.replace(
                setting,
                parallelism=most,
                reason=f"{setting.reason}; capped at {most} workers: each takes up to "
                f"{max(peaks) / 1e6:.0f} MB and they must fit {MEMORY_BUDGET:.0%} of the "
                f"available memory",
            )
    batches = _batches_per_epoch(pool)
    if batches is not None and setting.parallelism > batches:
        setting = dataclasses.replace(
            setting,
            parallelism=batches,
            reason=f"{setting.reason}; capped at {batches} workers: an epoch has {batches} "
            f"batches and each worker makes whole batches",
        )
    settings[pool.id] = setting


def _batches_per_epoch(pool: Stage) -> int | None:
    """Batches in one epoch of a map-style loader (None when its size is unknown)."""
    samples, batch = pool.knobs.get("cardinality"), pool.knobs.get("batch_size")
    if not isinstance(samples, int) or not isinstance(batch, int) or batch <= 0:
        return None
    return max(1, math.ceil(samples / batch))


def _pool_options(
    pipeline: Pipeline,
    pool: Stage,
    settings: dict[str, StageSetting],
    script_dir: Path,
    depth: PrefetchDepth | None,
    pin: bool,
) -> None:
    """Keep workers alive across epochs, buffer enough batches, pin memory for a GPU.

    Workers that start anew every epoch pay their start-up (and re-copy the
    dataset) each time; a loader iterated more than once keeps them. The
    loader buffers ``prefetch_factor`` batches per worker, so the depth the
    spread of producer and consumer times asks for is shared among them.
    Pinned batches copy to a CUDA device asynchronously, which only matters
    with one (``pin``: a GPU is present, and the plan may add more than CPU
    savings).
    """
    if pool.source is None:
        return
    previous = settings.get(pool.id)
    workers = previous.parallelism if previous and previous.parallelism else None
    workers = workers if workers is not None else pool.knobs.get("num_workers", 0)
    reasons = [previous.reason] if previous else []
    persistent = None
    iterations = pool.knobs.get("iterations")
    if (
        workers
        and isinstance(iterations, int)
        and iterations > 1
        and not pool.knobs.get("persistent_workers")
    ):
        persistent = True
        reasons.append(
            f"iterated {iterations} times: persistent workers skip starting {workers} "
            f"processes every epoch"
        )
    factor = None
    current = pool.knobs.get("prefetch_factor") or 2
    if workers and depth is not None and depth.depth > 0:
        wanted = max(2, math.ceil(depth.depth / workers))
        if wanted > current:
            factor = wanted
            reasons.append(f"prefetch_factor {factor}: {depth.depth} batches buffered across "
                           f"{workers} workers; {depth.reason}")
    pin = None
    if pin and not pool.knobs.get("pin_memory"):
        pin = True
        reasons.append("a GPU is present: pinned batches copy to it asynchronously")
    if previous is None and persistent is None and pin is None and factor is None:
        return
    settings[pool.id] = StageSetting(
        stage=StageRef.of(pool.source, pool.kind, script_dir),
        stage_id=pool.id,
        parallelism=previous.parallelism if previous else None,
        prefetch=factor,
        persistent_workers=persistent,
        pin_memory=pin,
        reason="; ".join(r for r in reasons if r),
        predicted_rate=previous.predicted_rate if previous else None,
    )


def _cache_location(
    profile: Profile, pipeline: Pipeline, stage_id: str, where: str, script_dir: Path
) -> str:
    """``memory``, or the file (tf.data) or folder (torch) a disk cache goes in."""
    if where == "memory":
        return "memory"
    return str(_cache_folder(profile, script_dir)
               / f"{_script_name(profile)}-{pipeline.id}-{stage_id}")


def _cache_folder(profile: Profile, script_dir: Path) -> Path:
    """Where file caches go: the machine's cache folder, else one beside the script."""
    return Path(profile.machine.cache_dir or script_dir / ".plumber-cache")


def _script_name(profile: Profile) -> str:
    return Path(profile.run.command[0]).stem if profile.run.command else "script"
