"""Entry point of the analysis: a Profile in, one Diagnosis per pipeline out.

Pure: no I/O, no framework imports, so it runs on a saved profile and on
synthetic profiles in tests. The steps follow README.md (How it works, step 5): per-stage
quantities, bounds, the binding bound and its kind, what-ifs, and the
recommendations that follow, with warnings wherever a measurement is
missing or the model and the measurements disagree.
"""

from __future__ import annotations

import math

from plumber.analyzers import network, text
from plumber.analyzers.allocate import fewer_calls_what_ifs
from plumber.analyzers.bounds import Limits, binding, compute_bounds
from plumber.analyzers.cache import DISK_BUDGET, MEMORY_BUDGET, cache_what_ifs
from plumber.analyzers.consumer import (
    EXCESS_TOLERANCE,
    consumer_cpu_per_root,
    in_process_cpu,
    in_process_excess,
    in_process_ids,
    in_process_scale,
    steady_busy_share,
)
from plumber.analyzers.objectcache import object_cache_what_if
from plumber.analyzers.observed import (
    consumer_rate,
    cpu_busy_share,
    disk_bytes_per_root,
    disk_read_rate,
    machine_busy_share,
    observed_rate,
    past_startup,
    root_elements,
    startup_s,
    steady_rate,
)
from plumber.analyzers.offload import offload_what_if
from plumber.analyzers.recommend import recommendations
from plumber.analyzers.results import Bound, Diagnosis, StageAnalysis
from plumber.analyzers.stages import (
    SATURATED,
    analyse_stages,
    core_wait_per_cpu,
    cpu_seconds_per_root,
    with_cpu_scaled,
    with_unrecorded_wall,
)
from plumber.analyzers.verdict import judge, summarise
from plumber.analyzers.whatif import Scene, parallelism_what_ifs, prefetch_what_if
from plumber.records.profile import Pipeline, Profile

#: Reads at this share of the measured cold bandwidth mean the disk is the limit.
DISK_BUSY = 0.8

#: A steady window shorter than this (steps, seconds) is too short to measure a rate.
STEADY_STEPS = 20
STEADY_S = 2.0

#: Predicted and observed rates further apart than this share get a warning.
GAP_WARNING = 0.3


def diagnose_all(profile: Profile) -> tuple[Diagnosis, ...]:
    """The diagnosis of every pipeline in ``profile``, in the profile's order."""
    return tuple(diagnose(profile, pipeline) for pipeline in profile.pipelines)


def diagnose(profile: Profile, pipeline: Pipeline | None = None) -> Diagnosis:
    """Analyse one pipeline of ``profile`` (the first when ``pipeline`` is None).

    Raises ValueError for a profile without pipelines.
    """
    if pipeline is None:
        if not profile.pipelines:
            raise ValueError("the profile has no pipeline to diagnose")
        pipeline = profile.pipelines[0]
    warnings: list[str] = []
    scene = _scene(profile, pipeline, warnings)
    verdict = judge(scene, warnings)
    what_ifs = [*parallelism_what_ifs(scene), *fewer_calls_what_ifs(scene),
                *cache_what_ifs(scene)]
    objects = object_cache_what_if(scene)
    if objects is not None:
        what_ifs.append(objects)
    prefetch = prefetch_what_if(scene)
    if prefetch is not None:
        what_ifs.append(prefetch)
    moved = offload_what_if(scene)
    if moved is not None:
        what_ifs.append(moved)
    recommended = recommendations(scene, what_ifs)
    what_ifs.sort(key=lambda w: (not w.feasible, -w.predicted_rate))
    predicted = scene.predicted_rate
    started = past_startup(pipeline)
    if started:
        _check_gap(predicted, scene.observed_rate, warnings)
    _check_steady(pipeline, warnings)
    return Diagnosis(
        pipeline_id=pipeline.id,
        observed_rate=scene.observed_rate,
        predicted_rate=predicted if math.isfinite(predicted) else math.nan,
        bottleneck=verdict.bound,
        bottleneck_kind=verdict.kind,
        bottleneck_stage=verdict.stage_id,
        input_bound=verdict.input_bound,
        stall_share=scene.stall_share,
        rate_if_fixed=verdict.rate_if_fixed,
        summary=summarise(scene, verdict),
        stages=scene.analyses,
        bounds=scene.bounds,
        what_ifs=tuple(what_ifs),
        recommendations=recommended,
        warnings=tuple(warnings),
        startup_s=startup_s(pipeline),
        uncertain=verdict.uncertain,
        past_startup=started,
    )


def scene(profile: Profile, pipeline: Pipeline) -> Scene:
    """The as-run model of ``pipeline``, for planning changes on top of it."""
    return _scene(profile, pipeline, [])


def _scene(profile: Profile, pipeline: Pipeline, warnings: list[str]) -> Scene:
    """Measure everything the model needs for ``pipeline`` and compute its bounds."""
    machine = profile.machine
    cores = machine.cores_usable
    if not 0 < cores < math.inf:
        cores = float(max(machine.cores_logical, 1))
        warnings.append(f"The usable cores were not recorded; the machine's {cores:g} logical "
                        f"cores stand in for them.")
    consumer = pipeline.consumer
    steady = steady_rate(pipeline)
    observed = steady if steady is not None else observed_rate(pipeline)
    roots = root_elements(pipeline)
    analyses: tuple[StageAnalysis, ...] = ()
    bounds: tuple[Bound, ...] = ()
    measured: float | None = None
    limits = Limits(cores=cores, consumer_rate=consumer_rate(pipeline))
    if roots is None:
        warnings.append("No root elements were recorded, so no stage could be modelled.")
    else:
        step_cpu = consumer_cpu_per_root(pipeline, roots, cores)
        excess = in_process_excess(pipeline, roots)
        scale = in_process_scale(excess)
        over = (1.0 - scale) * (in_process_cpu(pipeline) or 0.0) / roots
        demand = cpu_seconds_per_root(pipeline, roots) - over
        busy = (demand + (step_cpu or 0.0)) * observed / cores
        in_window = steady_busy_share(pipeline, cores, roots)
        measured = in_window if in_window is not None else cpu_busy_share(profile)
        busy_share = max(busy if math.isfinite(busy) else 0.0, measured or 0.0)
        cpu_saturated = busy_share >= SATURATED
        _note_contention(profile, measured, warnings)
        per_root, basis, doubt = disk_bytes_per_root(profile, pipeline, roots, observed)
        if doubt is not None:
            warnings.append(doubt)
        read_rate = disk_read_rate(profile)
        disk_busy = doubt is None and bool(
            machine.disk_read_bps
            and read_rate is not None
            and read_rate >= DISK_BUSY * machine.disk_read_bps
        )
        analyses = analyse_stages(pipeline, roots, cpu_saturated, disk_busy, cores,
                                  core_wait_per_cpu(profile.threads))
        if step_cpu == 0.0 and excess is None and consumer is not None and consumer.step_s > 0:
            warnings.append(
                "The stages that ran in the training process claim as much CPU per step "
                "as the process used over the steady window, so the training step's own "
                "CPU could not be told from theirs and is left out of the CPU bound."
            )
        if excess is not None:
            analyses = with_cpu_scaled(analyses, in_process_ids(pipeline), scale)
            warnings.append(
                f"The CPU measured per stage adds up to {excess:.2g}x what the training "
                f"process used over the same steps: the process's measurement wins, and "
                f"the stages' CPU is scaled down to {EXCESS_TOLERANCE:g}x it (what a short "
                f"window's start-up can account for)."
            )
        limits = Limits(
            cores, machine.disk_read_bps, per_root, basis, limits.consumer_rate,
            network_bps=network.bounding_bps(profile.network, pipeline),
            network_bytes_per_root=network.bytes_per_root(profile, roots),
            in_flight_cap=network.in_flight_cap(profile.network),
            consumer_cpu_per_root=step_cpu,
            step_share=1.0 - consumer.stall_share if consumer is not None else None,
            link_bps=machine.link_bps,
        )
        bounds = compute_bounds(analyses, limits)
        stage_id = binding(bounds).stage_id if bounds else None
        if stage_id is not None and busy_share > 0:
            analyses = with_unrecorded_wall(analyses, stage_id, busy_share * cores)
            bounds = compute_bounds(analyses, limits)
    if consumer is None:
        warnings.append(
            "The training loop was not observed: the step's rate is unknown, so the "
            "consumer bound is missing."
        )
    _note_missing(analyses, warnings)
    return Scene(
        pipeline=pipeline,
        run=profile.run,
        analyses=analyses or _unmodelled(pipeline),
        limits=limits,
        bounds=bounds,
        observed_rate=observed,
        stall_share=consumer.stall_share if consumer is not None else None,
        memory_budget=MEMORY_BUDGET * machine.memory_available_bytes,
        disk_budget=(
            DISK_BUDGET * machine.cache_dir_free_bytes
            if machine.cache_dir_free_bytes is not None
            else None
        ),
        cache_dir=machine.cache_dir,
        network=profile.network,
        busy_share=measured,
    )


def _note_contention(profile: Profile, own: float | None, warnings: list[str]) -> None:
    """Say when other processes kept the cores busy: stage times then include waiting for one."""
    machine = machine_busy_share(profile)
    if machine is None or own is None or machine < SATURATED or own >= SATURATED:
        return
    warnings.append(
        f"Other processes kept the machine busy during the run ({machine:.0%} of its cores, "
        f"this run {own:.0%} of the usable ones): stage times include waiting for a core, so "
        f"the rates are lower than on a quiet machine."
    )


def _unmodelled(pipeline: Pipeline) -> tuple[StageAnalysis, ...]:
    """Every stage as ``unmeasured``: nothing to divide their times by."""
    return tuple(
        StageAnalysis(s.id, s.kind, s.op, None, None, None, 1.0, None, None, "unmeasured",
                      s.source, s.unmeasured_reason or "no root elements recorded")
        for s in pipeline.stages
    )


def _note_missing(analyses: tuple[StageAnalysis, ...], warnings: list[str]) -> None:
    """Warn about stages the bounds leave out and CPU times that had to be guessed."""
    unmeasured = [f"{a.stage_id} ({a.note})" for a in analyses if a.resource == "unmeasured"]
    if unmeasured:
        warnings.append(f"Not measured, so left out of the bounds: {'; '.join(unmeasured)}.")
    guessed = [a.stage_id for a in analyses if a.resource == "cpu" and a.cpu_demand_s is None]
    if guessed:
        warnings.append(
            f"CPU time was not measured for {', '.join(guessed)}: their wall time stands in "
            f"for CPU demand, which overstates it for stages that wait, so the CPU bound is "
            f"pessimistic and waiting (latency) cannot be told apart from computing."
        )


def _check_steady(pipeline: Pipeline, warnings: list[str]) -> None:
    """Say when the run was too short for its steady rate to mean much."""
    consumer = pipeline.consumer
    if consumer is None or consumer.steady_s is None:
        return
    steps, seconds = consumer.steady_steps or 0, consumer.steady_s
    if steps == 0:
        warnings.append(
            "The run never got past its start-up, so no steady rate was measured: the "
            "observed rate includes the start-up and the model's rate, which is for the "
            "steady state, is not checked against it; run longer (more steps or epochs, or "
            "fewer batches asked for at once)."
        )
    elif steps < STEADY_STEPS or seconds < STEADY_S:
        warnings.append(
            f"The run was too short to measure a steady state: {steps} step(s) in "
            f"{seconds:.1f} s after start-up (at least {STEADY_STEPS} steps over "
            f"{STEADY_S:g} s are needed), so the observed rate and every prediction "
            f"compared with it are rough; run longer (more steps or epochs)."
        )


def _check_gap(predicted: float, observed: float, warnings: list[str]) -> None:
    """Keep the model honest: say when its rate and the measured one disagree."""
    if not (math.isfinite(predicted) and math.isfinite(observed) and observed > 0):
        return
    gap = abs(predicted - observed) / observed
    if gap > GAP_WARNING:
        warnings.append(
            f"The model predicts {text.rate(predicted)} for the pipeline as it ran but "
            f"{text.rate(observed)} was observed ({gap:.0%} apart): read its predictions "
            f"as rough."
        )
