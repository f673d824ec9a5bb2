"""The summary printed in the terminal when a profiled run ends.

A few lines per pipeline: what is slow, what it is bound by, what fixing
it would give, the analysis's warnings that qualify it, and the changes to
make; what a stage raised, the pipeline's notes and a worker's large
memory growth; then one line on the
run's network requests and where the full report and the saved profile
are. Plain text (no colour codes) so it reads the same in a terminal, a CI
log or a pasted bug report; lines are wrapped below 100 characters, except
a path too long to fit, which is never broken.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from plumber.analyzers.hotspotadvice import suggest
from plumber.analyzers.hotspots import hotspots
from plumber.analyzers.results import Diagnosis
from plumber.records.profile import Pipeline, Profile
from plumber.reports import format as fmt
from plumber.reports.applied import applied_plan_lines
from plumber.reports.hotspots import pipeline_hotspot
from plumber.reports.network import network_line
from plumber.reports.view import (
    bound_label,
    describe_bottleneck,
    diagnosis_for,
    gain_if_fixed,
    other_notes,
    run_failure,
    source_text,
    stage_errors,
    stall_window,
    startup_text,
    verdict_label,
)
from plumber.reports.workers import growth_text, is_large, largest_growth

WIDTH = 99
#: How many recommendations the summary lists; the report has them all.
TOP_RECOMMENDATIONS = 3


def render_summary(
    profile: Profile,
    diagnoses: Sequence[Diagnosis],
    report_path: str | Path | None = None,
    profile_path: str | Path | None = None,
) -> str:
    """The terminal summary of a run; its first line says so if the run failed."""
    lines: list[str] = []
    failure = run_failure(profile.run)
    if failure:
        lines.append(f"plumber: {failure}")
    if profile.run.interrupted:
        lines.append("plumber: the run was interrupted; the figures cover the part that ran")
    if not profile.pipelines:
        lines.append("No input pipeline was observed during this run.")
    found = hotspots(profile)
    for pipeline in profile.pipelines:
        if lines:
            lines.append("")
        diagnosis = diagnosis_for(pipeline, diagnoses)
        lines += _pipeline_lines(pipeline, diagnosis)
        hotspot = pipeline_hotspot(pipeline, diagnosis, found) if found else None
        if hotspot is not None:
            lines += _field("Hottest", hotspot)
        for suggestion in suggest(pipeline, diagnosis, found) if found else ():
            lines += _field("Suggestion", suggestion.text)
        lines += _incident_lines(pipeline)
    planned = applied_plan_lines(profile)
    if planned:
        lines.append("")
        for index, sentence in enumerate(planned):
            lines += _wrap(sentence, "         " if index else "Plan:    ", "         ")
    network = network_line(profile)
    if network is not None:
        lines += ["", *_wrap(network, "Network: ", "         ")]
    if report_path is not None or profile_path is not None:
        lines.append("")
    if report_path is not None:
        lines.append(f"Report:  {report_path}")
    if profile_path is not None:
        lines.append(f"Profile: {profile_path}")
    return "\n".join(lines) + "\n"


def _pipeline_lines(pipeline: Pipeline, diagnosis: Diagnosis | None) -> list[str]:
    """Bottleneck, rates, stall share and top recommendations of one pipeline."""
    if diagnosis is None:
        return [f"Pipeline {pipeline.id}: not analysed ({len(pipeline.stages)} stages recorded)"]
    lines = [f"Pipeline {pipeline.id}: {verdict_label(diagnosis)}"]
    gain = gain_if_fixed(diagnosis)
    gain_text = f" ({fmt.speedup(gain)})" if gain is not None else ""
    stall = (
        f"{fmt.fraction(diagnosis.stall_share)} of the training loop's time waiting for data"
        f"{stall_window(pipeline.consumer)}"
        if diagnosis.stall_share is not None
        else "not measured"
    )
    lines += _field("Bottleneck", describe_bottleneck(pipeline, diagnosis))
    lines += _field("Bound by", bound_label(diagnosis))
    lines += _field(
        "Rate",
        f"{fmt.rate(diagnosis.observed_rate)} observed{startup_text(diagnosis)}, "
        f"{fmt.rate(diagnosis.rate_if_fixed)} predicted if fixed{gain_text}",
    )
    lines += _field("Data stall", stall)
    lines += _wrap(diagnosis.summary, "  ", "  ")
    for warning in diagnosis.warnings:  # what qualifies the verdict, beside it as in the report
        lines += _field("Warning", warning)
    recommendations = diagnosis.recommendations
    if recommendations:
        lines.append("  Recommendations:")
    for i, rec in enumerate(recommendations[:TOP_RECOMMENDATIONS], start=1):
        where = source_text(rec.source)
        text = f"{rec.title}: {rec.old} -> {rec.new}" + (f" at {where}" if where else "")
        text += f"; predicted {fmt.rate(rec.predicted_rate)} ({fmt.speedup(rec.speedup)})"
        lines += _wrap(text, f"    {i}. ", "       ")
    hidden = len(recommendations) - TOP_RECOMMENDATIONS
    if hidden > 0:
        lines.append(f"    ... and {hidden} more in the report")
    return lines


def _incident_lines(pipeline: Pipeline) -> list[str]:
    """What each stage raised (and in which workers), other notes, a worker's large growth."""
    lines = []
    for stage_id, error in stage_errors(pipeline).items():
        lines += _field("Error", f"{stage_id} raised {error}")
    for note in other_notes(pipeline):
        lines += _field("Note", note)
    grown = largest_growth(pipeline)
    if grown is not None and is_large(grown):
        lines += _field(
            "Workers",
            f"worker {grown.worker} (pid {grown.pid}) grew {growth_text(grown)} in memory: "
            "copy-on-read of the dataset's Python objects in forked workers (see the report)",
        )
    return lines


def _field(label: str, value: str) -> list[str]:
    """``  Label       value``, wrapped with the value's column kept."""
    return _wrap(value, f"  {label:<12}", " " * 14)


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """``text`` wrapped below :data:`WIDTH`; long words (paths) are never split."""
    return textwrap.wrap(
        " ".join(text.split()),
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
