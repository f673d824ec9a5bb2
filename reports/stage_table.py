"""The stage table of the HTML report: one row per stage, a pool's members inside it.

Rows come in the graph's order (sources first, the root last), so a worker
pool's row precedes the stages its workers run; those are marked
``member`` and drawn indented under it as its breakdown, with their share
of the pool's time where a rate would stand (the pool's row carries the
bound). A stage that raised shows what it raised, and in which workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from plumber.analyzers.results import StageAnalysis
from plumber.records.profile import Pipeline, Stage
from plumber.reports import format as fmt
from plumber.reports.paths import full_source, short_source
from plumber.reports.pool import Share, pool_caption
from plumber.reports.view import knob_items, knob_note, unmeasured_reason


@dataclass(frozen=True)
class StageRows:
    """Builds the stage table's rows; knows the pipeline's pools, their shares and the errors.

    A pool's members follow its row (the table's order puts the pool first),
    marked ``member`` to be drawn indented as its breakdown: their share of
    the pool's time stands where a rate would, as the pool's row carries
    the bound.
    """

    pipeline: Pipeline
    pools: Mapping[str, tuple[str, ...]]
    shares: Mapping[str, Share]
    errors: Mapping[str, str]

    def row(
        self, stage: Stage, analysis: StageAnalysis | None, is_bottleneck: bool
    ) -> dict[str, str | Markup]:
        """One row of the stage table; unmeasured columns show a dash."""
        member = stage.nested_in in self.pools
        row = _stage_row(stage, analysis, is_bottleneck, nested_note=not member)
        error = self.errors.get(stage.id, "")
        flags = [row["flags"], "member" if member else "", "error" if error else ""]
        row["flags"] = " ".join(f for f in flags if f)
        row["error"] = f"raised {error}" if error else ""
        if stage.id in self.pools:
            order = " \u2192 ".join(self.pools[stage.id])
            note = f"{pool_caption(self.pipeline, stage.id)}: {order}; this row carries the bound"
            row["notes"] = "; ".join(n for n in (note, row["notes"]) if n)
        share = self.shares.get(stage.id)
        if member:
            row["max_rate"] = f"{fmt.fraction(share.wall)} of pool" if share else fmt.MISSING
        return row


def _stage_row(
    stage: Stage, analysis: StageAnalysis | None, is_bottleneck: bool, nested_note: bool = True
) -> dict[str, str | Markup]:
    """One row of the stage table; unmeasured columns show a dash.

    ``nested_note`` says "nested in ..." in the notes (a pool's members are
    shown inside their pool instead).
    """
    stats = stage.stats
    reason = unmeasured_reason(stage, analysis)
    changed = not stage.written or bool(stage.rewrite)
    if analysis is not None:
        parallelism = fmt.number(analysis.parallelism)
    elif stats is not None and stats.parallelism is not None:
        parallelism = fmt.number(stats.parallelism)
    else:
        parallelism = fmt.MISSING
    notes = [
        n
        for n in (
            f"unmeasured: {reason}" if reason else "",
            "added by TF" if not stage.written else "",
            f"rewritten: {stage.rewrite}" if stage.rewrite else "",
            f"nested in {stage.nested_in}" if stage.nested_in and nested_note else "",
            knob_note(stage),
            analysis.note if analysis is not None else "",
        )
        if n
    ]
    flags = (("bottleneck", is_bottleneck), ("unmeasured", bool(reason)), ("changed", changed))
    ran_as = ", ".join(stage.as_run) if set(stage.as_run) - {stage.op} else ""
    return {
        "id": stage.id,
        # Nested ids (interleave-0>interleave-0>TFRecord) may wrap after each ">".
        "id_html": Markup("&gt;<wbr>").join(escape(part) for part in stage.id.split(">")),
        "flags": " ".join(name for name, on in flags if on),
        "source": short_source(stage.source),
        "source_title": full_source(stage.source),
        "kind": f"{stage.kind} \u00b7 {stage.op}",
        "knobs": ", ".join(knob_items(stage)),
        "as_run": f"ran as {ran_as}" if ran_as else "",
        "parallelism": parallelism,
        "elements": fmt.count(stats.elements) if stats is not None else fmt.MISSING,
        "visit": fmt.number(analysis.visit_ratio) if analysis else fmt.MISSING,
        "cpu": fmt.milliseconds(analysis.cpu_demand_s) if analysis else fmt.MISSING,
        "wall": fmt.milliseconds(analysis.wall_demand_s) if analysis else fmt.MISSING,
        "wait": _wait(analysis),
        "max_rate": fmt.rate(analysis.max_rate) if analysis else fmt.MISSING,
        "resource": analysis.resource if analysis else fmt.MISSING,
        "notes": "; ".join(notes),
    }


def _wait(analysis: StageAnalysis | None) -> str:
    """The share of wall time off the CPU, with the part spent waiting for a core if measured."""
    if analysis is None:
        return fmt.MISSING
    wait = fmt.fraction(analysis.wait_fraction)
    core = analysis.core_wait_fraction
    return wait if core is None else f"{wait} ({fmt.fraction(core)} for a core)"
