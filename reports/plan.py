"""The tuning plan in the report: edits at source lines, why, and what they measured.

``plumber tune`` derives a plan, measures it against the script as written
and keeps it only when it is faster. The report shows it as the edits a
user could make by hand (wording from :mod:`plumber.analyzers.edits`, shared
with the terminal), each at its source line (short path, full path on
hover) with the model's reason and predicted rate, and above them what the
verification measured: the medians, their ratio and the spread of the runs.
A plan that was not faster is shown as dropped, so a reader sees what was
tried and why nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from plumber.analyzers.edits import is_loader, outcome, profiled_pipeline, stage_edits
from plumber.analyzers.speedup import runs_of
from plumber.records.plan import PipelinePlan, Plan, resolve_path
from plumber.records.profile import Pipeline, Profile, SourceLocation
from plumber.reports import format as fmt
from plumber.reports.paths import full_source, short_source


@dataclass(frozen=True)
class PlanRow:
    """One stage the plan changes: where, the edits (old, new), why, and the predicted rate."""

    source: str
    source_title: str
    edits: tuple[tuple[str, str], ...]
    reason: Markup
    #: Empty when the plan's settings are not those the model predicted.
    rate: str


@dataclass(frozen=True)
class PlanView:
    """The plan for one pipeline: kept or dropped, the measured outcome, the rows."""

    kept: bool
    outcome: str
    rows: tuple[PlanRow, ...]


def plans_by_pipeline(plan: Plan | None, profile: Profile) -> dict[str, tuple[PipelinePlan, bool]]:
    """Profile pipeline id -> (its plan, whether verification kept it)."""
    if plan is None:
        return {}
    script_dir = Path(plan.script).resolve().parent
    found: dict[str, tuple[PipelinePlan, bool]] = {}
    for pipelines, kept in ((plan.pipelines, True), (plan.rejected, False)):
        for planned in pipelines:
            pipeline = profiled_pipeline(planned, profile, script_dir)
            if pipeline is not None:
                found[pipeline.id] = (planned, kept)
    return found


def plan_view(
    planned: PipelinePlan,
    kept: bool,
    pipeline: Pipeline,
    script_dir: Path,
    prose: Callable[[str], Markup],
) -> PlanView:
    """The rows of ``planned`` against the stages of ``pipeline`` (its knobs as written)."""
    stages = {s.id: s for s in pipeline.stages}
    loader = is_loader(planned)
    predicted = planned.predicts_these_settings
    rows = []
    for setting in planned.settings:
        stage = stages.get(setting.stage_id)
        source = stage.source if stage is not None and stage.source is not None else \
            SourceLocation(resolve_path(setting.stage.file, script_dir), setting.stage.line)
        rows.append(PlanRow(
            source=short_source(source),
            source_title=full_source(source),
            edits=tuple((e.old, e.new) for e in stage_edits(setting, stage, loader)),
            reason=prose(setting.reason),
            rate=fmt.rate(setting.predicted_rate) if predicted else "",
        ))
    return PlanView(kept=kept, outcome=outcome(planned, kept) + runs_of(planned), rows=tuple(rows))
