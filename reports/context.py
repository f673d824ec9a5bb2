"""What the HTML template shows, prepared in Python: formatted text and SVG.

The template only lays things out; every number is formatted and every
figure drawn here, where it can be unit-tested. Values are plain strings
(the template escapes them) or :class:`markupsafe.Markup` for SVG built
by the escaping helpers in :mod:`plumber.reports.svg`.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from plumber.analyzers.hotspotadvice import focus_stage, suggest
from plumber.analyzers.hotspots import hotspots
from plumber.analyzers.results import Bound, Diagnosis, WhatIf
from plumber.records.kinds import POOL
from plumber.records.plan import PipelinePlan, Plan
from plumber.records.profile import Pipeline, Profile, SourceLocation
from plumber.reports import format as fmt
from plumber.reports.applied import AppliedPlanView, applied_plan_view
from plumber.reports.charts import Chart, bounds_chart, timelines
from plumber.reports.graph import layout, pipeline_graph
from plumber.reports.hotspots import HotspotsView, hotspots_view, pipeline_hotspot
from plumber.reports.network import NetworkView, network_view
from plumber.reports.paths import full_source, short_source, shorten_paths
from plumber.reports.plan import PlanView, plan_view, plans_by_pipeline
from plumber.reports.pool import member_shares, pool_members
from plumber.reports.stage_table import StageRows
from plumber.reports.steady import steady_note, steady_windows
from plumber.reports.threads import ThreadRow, profiler_overhead, thread_rows
from plumber.reports.view import (
    analyses_by_stage,
    bottleneck_stage_id,
    bound_label,
    diagnosis_for,
    gain_if_fixed,
    other_notes,
    run_failure,
    stage_errors,
    stall_window,
    startup_text,
)
from plumber.reports.workers import WorkersView, workers_view

#: Data-stall share above which the headline flags it, the threshold the
#: TensorBoard input-pipeline analyzer uses to call a job input-bound.
STALL_ALERT = 0.2

#: The analysis starts the reason of a change it rules out with this; the
#: report says it with a label instead.
_RULED_OUT = "Not proposed: "


@dataclass(frozen=True)
class Metric:
    """One box of a pipeline's headline: a label, a big value, a line under it.

    ``detail`` is Markup when it names a source file (a short path span).
    """

    label: str
    value: str
    detail: str | Markup = ""
    alert: bool = False


@dataclass(frozen=True)
class PipelineView:
    """Everything shown for one pipeline, headline first."""

    id: str
    anchor: str
    summary: Markup
    input_bound: bool | None
    uncertain: bool
    metrics: tuple[Metric, ...]
    recommendations: tuple[Mapping[str, str | Markup], ...]
    no_change: str
    plan: PlanView | None
    graph: Markup
    has_pool: bool
    bounds: Chart | None
    stages: tuple[Mapping[str, str | Markup], ...]
    what_ifs: tuple[Mapping[str, str | Markup | bool], ...]
    workers: WorkersView | None
    facts: tuple[tuple[str, str], ...]
    notes: tuple[Markup, ...]
    #: The bottleneck stage's hottest Python function (``--hotspots``), if sampled.
    hotspot: str | None = None
    #: Changes to the user's code the Python samples suggest (never part of a plan).
    hotspot_suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportView:
    """The whole page: run status, pipelines, resource timelines, run info.

    ``steady_note`` says what the timelines shade (the steady windows) or why
    nothing is shaded.
    """

    title: str
    command: str
    run_line: str
    failure: str | None
    interrupted: bool
    pipelines: tuple[PipelineView, ...]
    network: NetworkView | None
    timelines: tuple[Chart, ...]
    steady_note: str
    run: tuple[tuple[str, str], ...]
    machine: tuple[tuple[str, str], ...]
    error: str | None
    threads: tuple[ThreadRow, ...]
    profiler_overhead: str
    run_notes: tuple[str, ...]
    hotspots: HotspotsView | None = None
    applied_plan: AppliedPlanView | None = None


def report_view(
    profile: Profile, diagnoses: Sequence[Diagnosis], plan: Plan | None = None
) -> ReportView:
    """Build the page's content from a profile, the diagnoses of its pipelines, and a plan.

    ``plan`` is the verified plan ``plumber tune`` derived from this profile;
    each of its pipelines is shown with the profiled pipeline it tunes.
    """
    run = profile.run
    plans = plans_by_pipeline(plan, profile)
    script_dir = Path(plan.script).resolve().parent if plan is not None else Path()
    command = shlex.join(run.command)
    windows = steady_windows(profile)
    views = tuple(
        pipeline_view(p, diagnosis_for(p, diagnoses), i, plans.get(p.id), script_dir)
        for i, p in enumerate(profile.pipelines)
    )
    pipelines, hotspots = with_hotspots(profile, diagnoses, views)
    status = "interrupted" if run.interrupted else f"exit status {run.exit_status}"
    return ReportView(
        title=f"plumber: {command}" if command else "plumber report",
        command=command,
        run_line=f"started {run.started_at or 'at an unknown time'}, "
        f"ran {fmt.seconds(run.duration_s)}, {status}",
        failure=run_failure(run),
        interrupted=run.interrupted,
        pipelines=pipelines,
        network=network_view(profile),
        timelines=timelines(profile.resources, windows),
        steady_note=steady_note(windows),
        run=_run_rows(profile),
        machine=_machine_rows(profile),
        error=run.error,
        threads=thread_rows(profile.threads),
        profiler_overhead=profiler_overhead(profile.threads),
        run_notes=run.notes,
        hotspots=hotspots,
        applied_plan=applied_plan_view(profile),
    )


def with_hotspots(
    profile: Profile, diagnoses: Sequence[Diagnosis], views: tuple[PipelineView, ...]
) -> tuple[tuple[PipelineView, ...], HotspotsView | None]:
    """The pipelines' views with their headline hotspot, and the hotspots section (if sampled)."""
    found = hotspots(profile)
    if found is None:
        return views, None
    pairs = [(p, diagnosis_for(p, diagnoses)) for p in profile.pipelines]
    views = tuple(
        dataclasses.replace(view, hotspot=pipeline_hotspot(p, d, found),
                            hotspot_suggestions=tuple(s.text for s in suggest(p, d, found)))
        for view, (p, d) in zip(views, pairs, strict=True)
    )
    focus = [focus_stage(p, d, found) for p, d in pairs]
    return views, hotspots_view(found, [s for s in focus if s is not None], profile.pipelines)


def pipeline_view(
    pipeline: Pipeline,
    diagnosis: Diagnosis | None,
    index: int,
    planned: tuple[PipelinePlan, bool] | None = None,
    script_dir: Path = Path(),
) -> PipelineView:
    """The headline, plan, recommendations, graph, tables and notes of one pipeline.

    Sentences from the analysis (summary, reasons, notes) name files by their
    short path, as the rest of the page does (see :mod:`plumber.reports.paths`).
    ``planned`` is the pipeline's plan and whether verification kept it.
    """
    analyses = analyses_by_stage(diagnosis)
    bottleneck = bottleneck_stage_id(diagnosis) if diagnosis is not None else None
    anchor = f"pipeline-{index}"
    locations = [s.source for s in pipeline.stages if s.source is not None]

    def prose(text: str) -> Markup:
        return shorten_paths(text, locations)

    notes = other_notes(pipeline) + (diagnosis.warnings if diagnosis is not None else ())
    pools = pool_members(pipeline)
    rows = StageRows(pipeline, pools, member_shares(pipeline), stage_errors(pipeline))
    return PipelineView(
        id=pipeline.id,
        anchor=anchor,
        summary=prose(diagnosis.summary if diagnosis else "This pipeline was not analysed."),
        input_bound=diagnosis.input_bound if diagnosis is not None else None,
        uncertain=diagnosis is not None and diagnosis.uncertain,
        metrics=_metrics(pipeline, diagnosis, locations) if diagnosis is not None else (),
        recommendations=tuple(
            {
                "title": prose(r.title),
                "source": short_source(r.source),
                "source_title": full_source(r.source),
                "old": r.old,
                "new": r.new,
                "rate": fmt.rate(r.predicted_rate),
                "speedup": fmt.speedup(r.speedup),
                "reason": prose(r.reason),
                "sketch": r.sketch,
            }
            for r in (diagnosis.recommendations if diagnosis is not None else ())
        ),
        no_change=_no_change(diagnosis),
        plan=plan_view(*planned, pipeline, script_dir, prose) if planned else None,
        graph=pipeline_graph(pipeline, analyses, bottleneck, uid=anchor),
        has_pool=bool(pools),
        bounds=_bounds(diagnosis),
        stages=tuple(
            rows.row(pipeline.stage(sid), analyses.get(sid), sid == bottleneck)
            for sid in layout(pipeline).order
        ),
        what_ifs=tuple(
            _what_if_row(w, prose) for w in (diagnosis.what_ifs if diagnosis is not None else ())
        ),
        workers=workers_view(pipeline),
        facts=_pipeline_facts(pipeline),
        notes=tuple(prose(note) for note in notes),
    )


def _no_change(diagnosis: Diagnosis | None) -> str:
    """What "What to change" says when it lists nothing, and why."""
    if diagnosis is None:
        return "This pipeline was not analysed, so no change can be proposed."
    if diagnosis.step_shares_cores:
        return (
            "Nothing the model found frees enough of the CPU the input pipeline shares "
            "with the training step to clearly raise the rate; the step uses most of it. "
            "Speed up the step itself."
        )
    if not diagnosis.input_bound:
        return (
            "Nothing in the input pipeline: it keeps up with the training step, so "
            "changing it would not make training faster. Speed up the step itself."
        )
    return (
        "The model found no change that would clearly raise the rate; "
        "what it evaluated is listed under What if."
    )


def _what_if_row(w: WhatIf, prose: Callable[[str], Markup]) -> dict[str, str | Markup | bool]:
    """One row of the what-if table; a ruled-out change is flagged, its reason unprefixed."""
    reason = w.reason
    if not w.feasible and reason.startswith(_RULED_OUT):
        reason = reason[len(_RULED_OUT) :]
    return {
        "change": prose(w.change),
        "rate": fmt.rate(w.predicted_rate),
        "speedup": fmt.speedup(w.speedup),
        "reason": prose(reason),
        "feasible": w.feasible,
    }


def _metrics(
    pipeline: Pipeline, diagnosis: Diagnosis, locations: Sequence[SourceLocation]
) -> tuple[Metric, ...]:
    """Bottleneck, observed rate, rate if fixed (or what the pipeline alone gives), stall share."""
    stage_id = bottleneck_stage_id(diagnosis)
    stage = next((s for s in pipeline.stages if s.id == stage_id), None)
    bound_by = f"bound by {bound_label(diagnosis)}"
    if stage is not None:
        where = f" at {stage.source}" if stage.source is not None else ""
        name = stage.id
        detail = shorten_paths(f"{stage.kind} {stage.op}{where}; {bound_by}", locations)
    elif diagnosis.bottleneck_kind == "consumer":
        name, detail = "training step", Markup(escape(bound_by))
    else:
        name, detail = stage_id or diagnosis.bottleneck.name, Markup(escape(bound_by))
    consumer = pipeline.consumer
    stall_detail = ("of the training loop's time spent waiting for data"
                    f"{stall_window(consumer)}")
    if consumer is not None and consumer.wait_estimated:
        stall_detail += " (estimated)"
    predicted, error = diagnosis.predicted_rate, diagnosis.prediction_error
    model = (
        f"the model predicts {fmt.rate(predicted)} for it as it ran"
        + (f" (prediction error {error:.0%})" if error is not None else "")
        if fmt.is_number(predicted)
        else "the model made no prediction"
    )
    return (
        Metric("Bottleneck", name, detail, alert=diagnosis.input_bound),
        Metric(
            "Observed rate",
            fmt.rate(diagnosis.observed_rate),
            f"{_root_unit(pipeline)} per second reached the training loop"
            f"{startup_text(diagnosis)}; {model}",
        ),
        _if_fixed(diagnosis),
        Metric(
            "Data stall",
            fmt.fraction(diagnosis.stall_share),
            stall_detail if diagnosis.stall_share is not None else "not measured",
            alert=diagnosis.input_bound and (diagnosis.stall_share or 0) > STALL_ALERT,
        ),
    )


def _root_unit(pipeline: Pipeline) -> str:
    """What one root element is, in the reader's words: batches when the pipeline batches.

    A DataLoader's root elements are batches when it was given a batch size
    (its collation, in the workers, runs with or without one).
    """
    if pipeline.is_loader:
        batches = any(s.kind == POOL and isinstance(s.knobs.get("batch_size"), int)
                      for s in pipeline.stages)
    else:
        batches = any(s.kind == "batch" and s.nested_in is None for s in pipeline.stages)
    return "batches" if batches else "elements"


def _if_fixed(diagnosis: Diagnosis) -> Metric:
    """What removing the bottleneck gives and which bound limits next.

    When the consumer is the limit, the same number is what the input
    pipeline alone could deliver, and the box says that instead (not where
    the step binds through the cores it shares with the pipeline: the next
    limit may then be the step's own).
    """
    rate = diagnosis.rate_if_fixed
    if not diagnosis.input_bound and not diagnosis.step_shares_cores:
        detail = (
            "the most the input pipeline could deliver to a faster training step"
            if fmt.is_number(rate)
            else "not predicted: no stage bounds the pipeline's own rate"
        )
        return Metric("Pipeline alone", fmt.rate(rate), detail)
    if not fmt.is_number(rate):
        return Metric(
            "Predicted if fixed", fmt.MISSING,
            "not predicted: nothing measured bounds the rate, or the summary says why not"
        )
    gain = gain_if_fixed(diagnosis)
    parts = [f"{fmt.speedup(gain)} the observed rate" if gain is not None else ""]
    following = _next_bound(diagnosis)
    if following is not None:
        parts.append(f"next limit: {following.name}")
    return Metric("Predicted if fixed", fmt.rate(rate), "; ".join(p for p in parts if p))


def _next_bound(diagnosis: Diagnosis) -> Bound | None:
    """The bound that binds once the bottleneck is gone (its rate is ``rate_if_fixed``)."""
    return next(
        (
            b
            for b in diagnosis.bounds
            if b != diagnosis.bottleneck
            and fmt.is_number(b.rate)
            and math.isclose(b.rate, diagnosis.rate_if_fixed, rel_tol=1e-9)
        ),
        None,
    )


def _bounds(diagnosis: Diagnosis | None) -> Chart | None:
    """The bounds chart with a caption that names the binding bound."""
    if diagnosis is None or not diagnosis.bounds:
        return None
    caption = (
        f"Each bar is the most root elements per second one stage or resource "
        f"allows; the shortest, {diagnosis.bottleneck.name}, binds. "
        f"The line is the rate observed ({fmt.rate(diagnosis.observed_rate)})."
    )
    svg = bounds_chart(diagnosis.bounds, diagnosis.observed_rate, diagnosis.bottleneck)
    return Chart("Bounds", caption, svg)


def _pipeline_facts(pipeline: Pipeline) -> tuple[tuple[str, str], ...]:
    """Duration, element spec and the consumer's side of one pipeline."""
    rows = [("Iterated for", fmt.seconds(pipeline.duration_s))]
    if pipeline.infinite:
        rows.append(("Length", "infinite (repeats without end)"))
    if pipeline.element_spec:
        rows.append(("Element", pipeline.element_spec))
    consumer = pipeline.consumer
    if consumer is not None:
        estimated = " (estimated)" if consumer.wait_estimated else ""
        rows.append(
            (
                "Training loop",
                f"{fmt.count(consumer.steps)} steps, "
                f"{fmt.seconds(consumer.step_s)} stepping, {fmt.seconds(consumer.wait_s)} "
                f"waiting for data{estimated}; measured by {consumer.source}",
            )
        )
    return tuple(rows)


def _run_rows(profile: Profile) -> tuple[tuple[str, str], ...]:
    """What ran, how it ended, with which software (no environment, no host)."""
    run = profile.run
    rows = [
        ("Command", shlex.join(run.command) or fmt.MISSING),
        ("Exit status", str(run.exit_status)),
        ("Interrupted", "yes" if run.interrupted else "no"),
        ("Started", run.started_at or fmt.MISSING),
        ("Duration", fmt.seconds(run.duration_s)),
        ("Framework", f"{run.framework} {run.framework_version}".strip() or fmt.MISSING),
        ("Python", run.python_version or fmt.MISSING),
        ("plumber", run.plumber_version or fmt.MISSING),
    ]
    if run.bounded_by:
        rows.append(("Run bounded by", run.bounded_by))
    return tuple(rows)


def _machine_rows(profile: Profile) -> tuple[tuple[str, str], ...]:
    """The capacities the model used; a probe that did not run says so."""
    m = profile.machine
    disk = fmt.bandwidth(m.disk_read_bps) if fmt.is_number(m.disk_read_bps) else "not measured"
    if m.disk_probe_path and fmt.is_number(m.disk_read_bps):
        disk += f" (probed on {m.disk_probe_path})"
    gpus = ", ".join(str(g.get("name", "GPU")) for g in m.gpus)
    return (
        ("Cores usable", f"{fmt.number(m.cores_usable)} of {m.cores_logical} logical"),
        (
            "Memory",
            f"{fmt.size(m.memory_total_bytes)} total, "
            f"{fmt.size(m.memory_available_bytes)} available",
        ),
        ("Disk cold read", disk),
        ("GPU", f"{m.gpu_status}" + (f": {gpus}" if gpus else "")),
    )
