"""The multi-host report: one data-parallel job's hosts side by side, slowest named.

``plumber report host0.json host1.json ...`` and
``plumber.compare_hosts(...)`` render a :class:`~plumber.analyzers.hosts.HostComparison`
here: per pipeline, each host's rate, stall share, bottleneck and step
time, the differences that explain the slowest host, and the stages'
statistics host by host; then the machines. Like the single-run report,
the page is one self-contained HTML file (inline CSS, no scripts fetched)
rendered with autoescaping on, and the terminal gets a few plain lines.
"""

from __future__ import annotations

import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

from plumber.analyzers.hostdiff import (
    Difference,
    other_processes_share,
    stage_readings,
    word,
)
from plumber.analyzers.hosts import HostComparison, PipelineComparison
from plumber.records.files import write_text_atomically
from plumber.records.profile import ConsumerStats, Profile
from plumber.reports import format as fmt
from plumber.reports.view import bound_label, describe_bottleneck, run_failure, verdict_label

#: Terminal lines are wrapped below this width, as the single-run summary's.
WIDTH = 99

#: How many differences the terminal lists per pipeline; the page has them all.
TOP_DIFFERENCES = 3


@dataclass(frozen=True)
class HostRow:
    """One host's line in a pipeline's side-by-side table."""

    host: str
    rate: str
    stall: str
    verdict: str
    bottleneck: str
    kind: str
    step: str
    slowest: bool


@dataclass(frozen=True)
class ValuesRow:
    """A quantity across the hosts: its label and one formatted value per host.

    ``worse`` marks a stage's quantity that is one of the differences
    explaining the slowest host.
    """

    subject: str
    quantity: str
    values: tuple[str, ...]
    worse: bool = False


@dataclass(frozen=True)
class PipelineHostsView:
    """One pipeline across the hosts."""

    id: str
    summary: str
    slowest: str
    hosts: tuple[HostRow, ...]
    differences: tuple[ValuesRow, ...]
    stages: tuple[ValuesRow, ...]


@dataclass(frozen=True)
class HostsView:
    """The whole page: ``script`` is what the first host ran (each host's command is a row)."""

    title: str
    script: str
    hosts: tuple[str, ...]
    pipelines: tuple[PipelineHostsView, ...]
    machines: tuple[ValuesRow, ...]


def hosts_view(comparison: HostComparison) -> HostsView:
    """What the page shows, every value formatted."""
    command = comparison.profiles[0].run.command
    return HostsView(
        title=f"plumber: {len(comparison.hosts)} hosts of one job",
        script=command[0] if command else "",
        hosts=comparison.hosts,
        pipelines=tuple(_pipeline_view(c) for c in comparison.pipelines),
        machines=_machine_rows(comparison.profiles),
    )


def render_hosts_html(comparison: HostComparison) -> str:
    """The multi-host report as one HTML document."""
    from plumber.reports.html import _environment

    template = _environment().get_template("hosts.html.j2")
    return template.render(report=hosts_view(comparison))


def write_hosts_html(path: str | Path, comparison: HostComparison) -> Path:
    """Render the multi-host report and write it to ``path`` atomically; return the path."""
    return write_text_atomically(path, render_hosts_html(comparison))


def hosts_summary(comparison: HostComparison, report_path: str | Path | None = None) -> str:
    """The terminal lines: per pipeline the verdict, each host's rate, the top differences."""
    lines: list[str] = []
    for pipeline in comparison.pipelines:
        if lines:
            lines.append("")
        lines += textwrap.wrap(f"Pipeline {pipeline.pipeline_id}: {pipeline.summary}", WIDTH,
                               break_long_words=False, break_on_hyphens=False)
        for run in pipeline.runs:
            marker = "*" if run.host == pipeline.slowest_host else " "
            lines.append(f" {marker} {run.host}: {fmt.rate(run.diagnosis.observed_rate)}, "
                         f"bottleneck {describe_bottleneck(run.pipeline, run.diagnosis)}")
        for difference in pipeline.differences[:TOP_DIFFERENCES]:
            lines += textwrap.wrap(difference.sentence, WIDTH, initial_indent="   - ",
                                   subsequent_indent="     ", break_long_words=False)
        more = len(pipeline.differences) - TOP_DIFFERENCES
        if more > 0:
            lines.append(f"   ({more} more difference{'s' if more > 1 else ''} in the report)")
    if report_path is not None:
        lines.append(f"Report: {report_path}")
    return "\n".join(lines)


def _pipeline_view(comparison: PipelineComparison) -> PipelineHostsView:
    rows = tuple(
        HostRow(
            host=run.host,
            rate=fmt.rate(run.diagnosis.observed_rate),
            stall=fmt.fraction(run.diagnosis.stall_share),
            verdict=verdict_label(run.diagnosis),
            bottleneck=describe_bottleneck(run.pipeline, run.diagnosis),
            kind=bound_label(run.diagnosis),
            step=_step_text(run.pipeline.consumer),
            slowest=index == comparison.slowest,
        )
        for index, run in enumerate(comparison.runs)
    )
    return PipelineHostsView(
        id=comparison.pipeline_id,
        summary=comparison.summary,
        slowest=comparison.slowest_host,
        hosts=rows,
        differences=tuple(_difference_row(d) for d in comparison.differences),
        stages=_stage_rows(comparison),
    )


def _step_text(consumer: ConsumerStats | None) -> str:
    """The training loop's time per step outside waiting for data."""
    if consumer is None or consumer.steps <= 0:
        return fmt.MISSING
    return fmt.milliseconds(consumer.step_s / consumer.steps)


def _difference_row(difference: Difference) -> ValuesRow:
    return ValuesRow(difference.subject, difference.quantity,
                     _worded(difference.values, difference.unit))


def _stage_rows(comparison: PipelineComparison) -> tuple[ValuesRow, ...]:
    """Each measured stage's figures host by host; those that explain the slowest are marked."""
    worse = {(d.stage_id, d.quantity) for d in comparison.differences}
    pipelines = [run.pipeline for run in comparison.runs]
    diagnoses = [run.diagnosis for run in comparison.runs]
    rows = []
    for stage in comparison.runs[comparison.slowest].pipeline.stages:
        readings = stage_readings(stage.id, pipelines, diagnoses)
        if all(v is None for v in readings[0].values):
            continue
        rows += [ValuesRow(stage.id, r.quantity, _worded(r.values, r.unit),
                           (stage.id, r.quantity) in worse)
                 for r in readings if any(v is not None for v in r.values)]
    return tuple(rows)


def _worded(values: tuple[float | None, ...], unit: str) -> tuple[str, ...]:
    """Compared values as the differences word them; an unmeasured one is a dash."""
    return tuple(word(v, unit) if v is not None else fmt.MISSING for v in values)


def _machine_rows(profiles: tuple[Profile, ...]) -> tuple[ValuesRow, ...]:
    """The machines side by side, and how each run ended."""
    def row(quantity: str, values: list[str], subject: str = "machine") -> ValuesRow:
        return ValuesRow(subject, quantity, tuple(values))

    machines = [p.machine for p in profiles]
    return (
        row("logical cores", [fmt.count(m.cores_logical) for m in machines]),
        row("usable cores", [fmt.number(m.cores_usable) for m in machines]),
        row("memory", [fmt.size(m.memory_total_bytes) for m in machines]),
        row("available memory", [fmt.size(m.memory_available_bytes) for m in machines]),
        row("disk read bandwidth", [fmt.bandwidth(m.disk_read_bps) for m in machines]),
        row("network bandwidth (probed)",
            [fmt.bandwidth(p.network.available_bps if p.network else None) for p in profiles]),
        row("cores busy with other processes",
            [fmt.fraction(other_processes_share(p)) for p in profiles]),
        row("GPUs", [str(len(m.gpus)) if m.gpus else m.gpu_status for m in machines]),
        row("ended", [run_failure(p.run) or ("interrupted" if p.run.interrupted else "completed")
                      for p in profiles], "run"),
        row("started", [p.run.started_at for p in profiles], "run"),
        row("command", [shlex.join(p.run.command) for p in profiles], "run"),
    )
