"""Cache placement: where a cache would pay, and where it must not go.

A cache after stage s replays s's output from the second epoch on, so the
demand of s and everything below it disappears in steady state; the
predicted rate is the minimum of the bounds that remain (README.md, How it
works, step 5), averaged over the run's passes with the first, which fills
it. A DataLoader's sample cache is not free: its pool pays what storing a
sample was measured to cost on the first pass and reading one back on
every later one (``sample_cache_store_s``, ``sample_cache_read_s``), and
a cache whose average over the run's passes is not above the rate without
it by the what-ifs' listing threshold (``WORTH_LISTING``) is not proposed.
Its size is bytes per element x the stream's cardinality. It goes in
memory when it fits a share of the available memory, else in a file when it
fits a share of the free space where file caches go (replaying it then
costs disk reads, which the prediction counts). A cache never goes after a
random or stateful stage (it would freeze one epoch's randomness), below a
``take`` (TF discards a cache that is not read to its end) or in a run none
of whose passes read the data to its end (each iterator abandoned midway),
or on a stream that is infinite or of unknown size. The size of a stream TF
does not know comes from the run's passes (one per iterator: an epoch loop
makes a fresh one per epoch). In a worker pool (a torch DataLoader) the
cache holds samples by index, so it goes after the fetch or a transform,
never after collation, and needs a map-style dataset whose samples are not
cached already (a plan's ``CachedDataset`` in force). Candidates that would
help but break a rule are returned with ``feasible=False`` and the reason,
so a reader learns why.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import fmean

from plumber.analyzers import text
from plumber.analyzers.allocate import with_parallelism
from plumber.analyzers.bounds import compute_bounds, rate_of
from plumber.analyzers.results import WhatIf
from plumber.analyzers.stages import cpu_demand, with_work, without
from plumber.analyzers.topology import above, below, is_random, pool_of
from plumber.analyzers.whatif import WORTH_LISTING, Scene
from plumber.records.kinds import PIN_MEMORY, POOL, SAMPLE_CACHE, SERVICE
from plumber.records.profile import Pipeline, Stage

#: Share of the available memory a cache may take.
MEMORY_BUDGET = 0.5

#: Share of the free space where file caches go that one may take.
DISK_BUDGET = 0.5

#: A cache is proposed only for a run that read its data at least this many times.
MIN_PASSES = 1.9

#: Kinds after which a cache is pointless or wrong: caching a cache or a
#: buffer, or a stream that a repeat/take/skip already reshaped; a worker
#: pool's batches and pinned copies (its cache holds samples).
NOT_AFTER = frozenset(
    {"cache", "prefetch", "repeat", "take", "skip", "config", POOL, PIN_MEMORY}
)


def cache_what_ifs(scene: Scene) -> list[WhatIf]:
    """Caches that would raise the rate, in stage order, and the better ones ruled out.

    A ruled-out cache is listed only if it beats every allowed one, once per
    reason (the best such), so a reader learns what stands in the way.
    """
    pipeline = scene.pipeline
    candidates = []
    for stage in pipeline.stages:
        if not _cacheable_position(scene, stage):
            continue
        covered = below(pipeline, stage.id)
        if any(pipeline.stage(sid).kind == "repeat" for sid in covered):
            continue
        place = _placement(scene, stage, covered)
        cost = _sample_cache_cost(scene, stage)
        steady = _cached_rate(scene, covered, place, cost)
        if steady > WORTH_LISTING * scene.predicted_rate:
            candidates.append(_what_if(scene, stage, covered, steady, place, cost))
    best_allowed = max((w.predicted_rate for w in candidates if w.feasible), default=0.0)
    ruled_out: dict[str, WhatIf] = {}
    for w in candidates:
        if not w.feasible and w.predicted_rate > best_allowed:
            kept = ruled_out.get(w.reason)
            if kept is None or w.predicted_rate > kept.predicted_rate:
                ruled_out[w.reason] = w
    return [w for w in candidates if w.feasible or ruled_out.get(w.reason) is w]


def _cacheable_position(scene: Scene, stage: Stage) -> bool:
    """Whether a cache right after ``stage`` is a place the framework can put one.

    tf.data caches whole streams, so not inside a nested body; a worker
    pool caches samples, so after its fetch or a transform, not its batches.
    """
    if stage.kind in NOT_AFTER or stage.stats is None:
        return False
    if pool_of(scene.pipeline, stage) is not None:
        return stage.kind != "batch"
    return stage.nested_in is None


@dataclasses.dataclass(frozen=True)
class _Placement:
    """Where a cache would live and what it would hold (size None when unknown)."""

    where: str
    size: float | None
    bytes_per_root: float | None


def _placement(scene: Scene, stage: Stage, covered: frozenset[str]) -> _Placement:
    """Memory when the cache fits the memory budget, else disk when it fits the disk budget."""
    size = _size(scene, stage)
    roots = _roots_per_epoch(scene, stage)
    per_root = size / roots if size is not None and roots else None
    if size is None or size <= scene.memory_budget:
        return _Placement("memory", size, per_root)
    if scene.disk_budget is not None and size <= scene.disk_budget:
        return _Placement("disk", size, per_root)
    return _Placement("memory", size, per_root)


def _size(scene: Scene, stage: Stage) -> float | None:
    stats = stage.stats
    cardinality, _ = _cardinality(scene, stage, above(scene.pipeline, stage.id))
    if cardinality is None or stats is None or stats.elements <= 0 or stats.bytes_produced <= 0:
        return None
    return stats.bytes_produced / stats.elements * cardinality


def _roots_per_epoch(scene: Scene, stage: Stage) -> float | None:
    """Root elements in one epoch of ``stage``'s stream: its elements per root element."""
    root = next((s for s in scene.pipeline.stages if s.id == scene.pipeline.root), None)
    stats, root_stats = stage.stats, root.stats if root is not None else None
    cardinality, _ = _cardinality(scene, stage, above(scene.pipeline, stage.id))
    if cardinality is None or stats is None or root_stats is None or stats.elements <= 0:
        return None
    return cardinality * root_stats.elements / stats.elements


@dataclasses.dataclass(frozen=True)
class _SampleCacheCost:
    """Seconds of CPU per root element a sample cache spends in its pool, and where."""

    pool: str
    store_s: float
    read_s: float


def _sample_cache_cost(scene: Scene, stage: Stage) -> _SampleCacheCost | None:
    """What a sample cache after ``stage`` costs its pool per root element: storing on
    the first pass, reading back on every later one (the stage's measured
    ``sample_cache_store_s`` and ``sample_cache_read_s`` times its samples per
    root element). None outside a pool (tf.data's own cache, whose replay in
    memory is taken as free) and where not measured."""
    pool = _pool(scene, stage)
    stats = stage.stats
    if pool is None or stats is None or stats.sample_cache_store_s is None \
            or stats.sample_cache_read_s is None:
        return None
    visits = next((a.visit_ratio for a in scene.analyses if a.stage_id == stage.id), None)
    if visits is None:
        return None
    return _SampleCacheCost(pool.id, stats.sample_cache_store_s * visits,
                            stats.sample_cache_read_s * visits)


def steady_rate_with(scene: Scene, stage_id: str, parallelism: dict[str, int]) -> float:
    """The rate once a cache after ``stage_id`` is full, with ``parallelism`` set too (a
    plan's allocation): each stage's rate scales with its new calls, the wall time of a
    call as it ran (no fewer waits for a core, no longer requests), so an
    oversubscribed stage given fewer calls reads slower than it would be."""
    stage = scene.pipeline.stage(stage_id)
    covered = below(scene.pipeline, stage_id)
    return _cached_rate(scene, covered, _placement(scene, stage, covered),
                        _sample_cache_cost(scene, stage), parallelism)


def _cached_rate(scene: Scene, covered: frozenset[str], place: _Placement,
                 cost: _SampleCacheCost | None,
                 parallelism: dict[str, int] | None = None) -> float:
    """The steady-state rate with every stage in ``covered`` replayed from the cache.

    The disk bound goes when every stage that reads storage is covered; a
    file cache brings its own: the cached bytes are read back every epoch.
    A sample cache's pool reads and decodes each sample back (``cost``).
    """
    remaining = without(scene.analyses, covered)
    if cost is not None:
        remaining = with_work(remaining, cost.pool, cost.read_s)
    if parallelism:
        remaining = with_parallelism(remaining, parallelism)
    readers = {
        a.stage_id
        for a in scene.analyses
        if a.kind == "source" or a.resource in ("latency", "disk")
    }
    limits = scene.limits
    if readers <= covered:
        limits = dataclasses.replace(limits, disk_bytes_per_root=None)
    if place.where == "disk" and place.bytes_per_root:
        replay = place.bytes_per_root + (limits.disk_bytes_per_root or 0.0)
        limits = dataclasses.replace(
            limits, disk_bytes_per_root=replay, disk_basis="file cache read back"
        )
    return rate_of(compute_bounds(remaining, limits))


def average_rate(passes: float, first: float, steady: float) -> float:
    """The rate over ``passes`` passes: the first at ``first``, the rest at ``steady``."""
    if not (passes >= 1 and first > 0 and steady > 0):
        return steady
    return passes / (1 / first + (passes - 1) / steady)


def passes(scene: Scene, stage: Stage) -> float | None:
    """How many times the run read ``stage``'s stream end to end (None when its size is unknown)."""
    cardinality, _ = _cardinality(scene, stage, above(scene.pipeline, stage.id))
    if not cardinality or stage.stats is None:
        return None
    return stage.stats.elements / cardinality


def _filling_rate(scene: Scene, cost: _SampleCacheCost | None) -> float:
    """The rate of the pass that fills the cache: as run, plus a sample cache's writes."""
    if cost is None:
        return scene.predicted_rate
    return rate_of(compute_bounds(with_work(scene.analyses, cost.pool, cost.store_s),
                                  scene.limits))


def _what_if(
    scene: Scene, stage: Stage, covered: frozenset[str], steady: float, place: _Placement,
    cost: _SampleCacheCost | None,
) -> WhatIf:
    problem, contents = _obstacle(scene, stage, covered, place)
    epochs = passes(scene, stage)
    if problem is None and epochs is not None and epochs < MIN_PASSES:
        problem = (
            f"the run read its data {epochs:.1f} time(s): a cache pays from the second pass "
            f"on, and filling it costs the first"
        )
    predicted = steady
    first = _filling_rate(scene, cost)
    if problem is None and epochs is not None:
        predicted = average_rate(epochs, first, steady)
        if predicted <= WORTH_LISTING * scene.predicted_rate:
            problem = (
                f"over the run's {round(epochs, 1):g} passes it would average "
                f"{text.rate(predicted)} against {text.rate(scene.predicted_rate)} without it"
                f"{': ' + _cost_text(cost) if cost is not None else ''}"
            )
    saved = sum(
        cpu_demand(a) or 0.0
        for a in scene.analyses
        if a.stage_id in covered and (a.pool is not None or a.kind != POOL)
    )
    medium = "in memory" if place.where == "memory" else f"in a file under {scene.cache_dir}"
    if problem is None:
        over = (
            f"; {text.rate(steady)} once full, {text.rate(predicted)} averaged over the "
            f"run's {round(epochs, 1):g} passes" if epochs is not None else ""
        )
        spent = f", {_cost_text(cost)}" if cost is not None else ""
        reason = (
            f"From the second epoch on, the {len(covered)} stage(s) at and below {stage.id} "
            f"no longer run ({text.ms(saved)} of CPU per root element saved{spent}){over}; "
            f"the cache holds {contents} {medium}."
        )
    else:
        reason = f"Not proposed: {problem}."
    return WhatIf(
        stage_id=stage.id,
        knob="cache",
        value=place.where,
        change=f"cache {'in memory' if place.where == 'memory' else 'on disk'} after "
        f"{text.where(stage)}",
        predicted_rate=predicted,
        speedup=scene.speedup(predicted),
        reason=reason,
        feasible=problem is None,
        steady_rate=steady,
        first_pass_rate=first,
    )


def _cost_text(cost: _SampleCacheCost) -> str:
    """What a sample cache spends per root element, as measured."""
    return (f"reading its samples back costs {text.ms(cost.read_s)} of CPU per root element "
            f"and storing them {text.ms(cost.store_s)} on the first pass")


def _obstacle(
    scene: Scene, stage: Stage, covered: frozenset[str], place: _Placement
) -> tuple[str | None, str]:
    """Why a cache after ``stage`` must not be proposed (None if it may), and what it holds."""
    pipeline = scene.pipeline
    service = next((s for s in pipeline.stages if s.id in covered and SERVICE in s.knobs),
                   None)
    if service is not None:
        return (
            f"{service.id} reads from a tf.data service, whose workers make every epoch "
            f"anew with functions not checked here, and a cache after it would replay one "
            f"epoch in every epoch", "",
        )
    random = [s for s in pipeline.stages if s.id in covered and is_random(s)]
    if random:
        first = min(random, key=lambda s: len(below(pipeline, s.id)))
        return (
            f"{first.id} is random or stateful, and a cache after it would replay one "
            f"epoch's randomness in every epoch", "",
        )
    pool = _pool(scene, stage)
    if pool is not None and pool.knobs.get("map_style") is False:
        return "an iterable dataset has no index to cache its samples by", ""
    if pool is not None and isinstance(pool.knobs.get(SAMPLE_CACHE), int):
        return (
            f"the loader's samples are cached already ({_cached_upto(pool.knobs[SAMPLE_CACHE])} "
            f"by plumber's CachedDataset), and a second cache would only add its own reads", "",
        )
    downstream = above(pipeline, stage.id)
    if any(s.kind == "take" for s in downstream):
        return "a take() above it stops reading early, and TF discards an unfinished cache", ""
    if pool is None and pipeline.passes and not any(p.complete for p in pipeline.passes):
        return f"{_no_whole_pass(scene)}, and TF discards an unfinished cache", ""
    cardinality, basis = _cardinality(scene, stage, downstream)
    if cardinality is None:
        return basis, ""
    size = place.size
    if size is None:
        return "the bytes per element it produces were not measured", ""
    if place.where == "memory" and size > scene.memory_budget:
        available = scene.memory_budget / MEMORY_BUDGET
        room = (
            f" or of the {text.size(scene.disk_budget / DISK_BUDGET)} free for file caches"
            if scene.disk_budget is not None
            else " (free disk space unknown)"
        )
        return (
            f"it would hold about {text.size(size)}, more than {MEMORY_BUDGET:.0%} of the "
            f"{text.size(available)} of available memory{room}", "",
        )
    return None, f"about {text.size(size)} ({cardinality:.0f} elements, {basis})"


def _cached_upto(upto: int) -> str:
    """Where a sample cache holds its samples: ``after fetch`` for -1, else after a transform."""
    return "after fetch" if upto < 0 else f"after transform_{upto}"


def _pool(scene: Scene, stage: Stage) -> Stage | None:
    pool_id = pool_of(scene.pipeline, stage)
    return scene.pipeline.stage(pool_id) if pool_id is not None else None


def _cardinality(
    scene: Scene, stage: Stage, downstream: tuple[Stage, ...]
) -> tuple[float | None, str]:
    """Elements one epoch of ``stage``'s stream holds, or None with the reason it is unknown.

    A ``cardinality`` knob wins (a pool's, for the samples its workers
    fetch). Otherwise the run's passes say it: the stage's elements over
    the passes its iterators made (:func:`run_passes`) and the finite
    repeats above. A profile without passes (written before they were
    recorded) counts the run as one pass, provided it read the data to its
    end; a run that plumber or the user stopped did not.
    """
    pool = _pool(scene, stage)
    known = (pool if pool is not None and stage.kind != "batch" else stage).knobs.get(
        "cardinality"
    )
    if isinstance(known, int) and not isinstance(known, bool) and known >= 0:
        return float(known), "its cardinality"
    endless = [s for s in downstream if s.kind == "repeat" and _count(s) is None]
    if scene.pipeline.infinite and not endless:
        return None, "the stream is infinite"
    if endless:
        return None, "its size is unknown: an endless repeat() above it hides the epoch"
    repeats = math.prod(_count(s) or 1 for s in downstream if s.kind == "repeat")
    elements = stage.stats.elements if stage.stats is not None else 0
    if scene.pipeline.passes:
        counted = run_passes(scene.pipeline)
        if counted is None:
            return None, f"its size is unknown: {_no_whole_pass(scene)}"
        whole = sum(p.complete for p in scene.pipeline.passes)
        return (
            elements / (counted * repeats),
            f"size from the {whole} pass(es) this run read to the end",
        )
    run = scene.run
    if run.bounded_by is not None or run.interrupted or run.exit_status != 0:
        return None, "its size is unknown: the run stopped before the data ended"
    return elements / repeats, "size from this run, assuming it read whole epochs"


def run_passes(pipeline: Pipeline) -> float | None:
    """How many passes over its data the run made, from its iterators; None when unknown.

    An epoch is what an iterator that read the data to its end delivered
    (their mean, should a random filter make them differ); an iterator
    abandoned midway counts for its share of one. Unknown without a pass
    read to the end.
    """
    whole = [p.elements for p in pipeline.passes if p.complete]
    if not whole or fmean(whole) <= 0:
        return None
    return sum(p.elements for p in pipeline.passes) / fmean(whole)


def _no_whole_pass(scene: Scene) -> str:
    """Why no pass of the run is known to have read the data to its end."""
    run = scene.run
    if run.bounded_by is not None or run.interrupted or run.exit_status != 0:
        return "the run stopped before any pass read the data to its end"
    return (
        "no iterator was seen reading the data to its end (each stopped early, or ended "
        "where plumber cannot see it, as in Keras with steps_per_execution above 1)"
    )


def _count(repeat: Stage) -> int | None:
    """How many passes a repeat makes; None for an endless (or unknown) one."""
    count = repeat.knobs.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    return None
