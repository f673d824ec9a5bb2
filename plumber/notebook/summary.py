"""The compact HTML summary a ProfileResult shows in Jupyter.

It answers the report's first question in a few lines per pipeline: which
stage is the bottleneck (with its source line), what it is bound by, the
observed rate against the rate predicted once it is fixed, then a small
stage table, the top recommendations, and the run's notes. The full report
is one ``.report(path)`` away. Phrasing comes from :mod:`plumber.reports.view`
so the notebook, the terminal and the report say the same thing; every
string from the profile is HTML-escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from plumber.analyzers.results import Diagnosis, Recommendation
from plumber.records.profile import Pipeline, Profile
from plumber.reports import format as fmt
from plumber.reports.view import (
    analyses_by_stage,
    bottleneck_stage_id,
    bound_label,
    describe_bottleneck,
    diagnosis_for,
    gain_if_fixed,
    knob_items,
    run_failure,
    source_text,
    verdict_label,
)

#: How many recommendations the summary lists; ``.recommend()`` has them all.
TOP_RECOMMENDATIONS = 3

_CELL = 'style="text-align:left;padding:2px 8px"'
_NUM = 'style="text-align:right;padding:2px 8px"'


def escape(value: object) -> str:
    """``value`` as text safe inside HTML elements and attributes."""
    return html.escape(str(value), quote=True)


def result_html(profile: Profile, diagnoses: Sequence[Diagnosis]) -> str:
    """The whole summary: failure line, one block per pipeline, run notes."""
    parts = ['<div class="plumber-result">']
    failure = run_failure(profile.run)
    if failure:
        parts.append(f'<p style="color:#b00020"><b>{escape(failure)}</b></p>')
    if not profile.pipelines:
        parts.append("<p><b>No input pipeline was observed.</b></p>")
    for pipeline in profile.pipelines:
        parts.append(pipeline_html(pipeline, diagnosis_for(pipeline, diagnoses)))
    notes = profile.run.notes
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        parts.append(f'<ul style="font-size:smaller;color:#555">{items}</ul>')
    parts.append("</div>")
    return "\n".join(parts)


def pipeline_html(pipeline: Pipeline, diagnosis: Diagnosis | None) -> str:
    """Headline, stage table and top recommendations of one pipeline."""
    if diagnosis is None:
        return f"<p><b>{escape(pipeline.id)}</b>: not analysed.</p>"
    gain = gain_if_fixed(diagnosis)
    gain_text = f" ({fmt.speedup(gain)})" if gain is not None else ""
    verdict = verdict_label(diagnosis)
    rows = (
        ("Bottleneck", describe_bottleneck(pipeline, diagnosis)),
        ("Bound by", bound_label(diagnosis)),
        (
            "Rate",
            f"{fmt.rate(diagnosis.observed_rate)} observed, "
            f"{fmt.rate(diagnosis.rate_if_fixed)} predicted if fixed{gain_text}",
        ),
    )
    headline = "".join(
        f"<tr><th {_CELL}>{escape(k)}</th><td {_CELL}>{escape(v)}</td></tr>" for k, v in rows
    )
    parts = [
        f"<h4 style=\"margin:8px 0 4px\">Pipeline {escape(pipeline.id)}: {escape(verdict)}</h4>",
        f"<table>{headline}</table>",
        f"<p>{escape(diagnosis.summary)}</p>",
        stage_table_html(pipeline, diagnosis),
    ]
    if diagnosis.recommendations:
        parts.append("<b>Recommendations</b>")
        parts.append(recommendations_html(diagnosis.recommendations, TOP_RECOMMENDATIONS))
    notes = pipeline.notes + diagnosis.warnings
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        parts.append(
            f'<details><summary>{len(notes)} note(s)</summary>'
            f'<ul style="font-size:smaller">{items}</ul></details>'
        )
    return "\n".join(parts)


def stage_table_html(pipeline: Pipeline, diagnosis: Diagnosis) -> str:
    """Stages in the record's order (inputs first): op, source line, knobs, demands, max rate."""
    analyses = analyses_by_stage(diagnosis)
    bottleneck = bottleneck_stage_id(diagnosis)
    header = "".join(
        f"<th {_CELL}>{h}</th>"
        for h in ("stage", "op", "source", "knobs", "CPU / root", "wall / root", "max rate",
                  "bound by")
    )
    body = []
    for stage in pipeline.stages:
        analysis = analyses.get(stage.id)
        cells = (
            (_CELL, stage.id),
            (_CELL, stage.op),
            (_CELL, source_text(stage.source) or fmt.MISSING),
            (_CELL, ", ".join(knob_items(stage))),
            (_NUM, fmt.milliseconds(analysis.cpu_demand_s if analysis else None)),
            (_NUM, fmt.milliseconds(analysis.wall_demand_s if analysis else None)),
            (_NUM, fmt.rate(analysis.max_rate if analysis else None)),
            (_CELL, analysis.resource if analysis else "unmeasured"),
        )
        row = "".join(f"<td {style}>{escape(value)}</td>" for style, value in cells)
        weight = ' style="font-weight:bold;background:#fff3cd"' if stage.id == bottleneck else ""
        body.append(f"<tr{weight}>{row}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def recommendations_html(recommendations: Sequence[Recommendation], limit: int | None) -> str:
    """An ordered list of changes, each with its source line and predicted gain."""
    shown = recommendations if limit is None else recommendations[:limit]
    if not shown:
        return "<p>No change is predicted to help enough to recommend.</p>"
    items = []
    for rec in shown:
        where = source_text(rec.source)
        text = (
            f"<b>{escape(rec.title)}</b>: <code>{escape(rec.old)}</code> &rarr; "
            f"<code>{escape(rec.new)}</code>"
            + (f" at <code>{escape(where)}</code>" if where else "")
            + f"; predicted {escape(fmt.rate(rec.predicted_rate))} "
            f"({escape(fmt.speedup(rec.speedup))})"
        )
        items.append(f"<li>{text}</li>")
    hidden = len(recommendations) - len(shown)
    more = f"<p>... and {hidden} more: <code>.recommend()</code></p>" if hidden > 0 else ""
    return f"<ol>{''.join(items)}</ol>{more}"
