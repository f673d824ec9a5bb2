"""What keeps the HTML report readable: short paths, honest rates, rejected changes set apart.

These check the markup; ``tests/browser`` checks what a browser makes of it.
"""

from __future__ import annotations

import dataclasses
import re

from plumber.records.profile import SourceLocation
from plumber.reports.html import render_html
from plumber.reports.paths import shorten_paths
from tests.report_samples import (
    LONG_FILE,
    Case,
    consumer_bound_case,
    input_bound_case,
    nested_case,
    sample_diagnosis,
    sample_profile,
)


def _render(case: Case) -> str:
    profile, diagnoses = case
    return render_html(profile, diagnoses)


def _between(html: str, start: str, end: str) -> str:
    return html[html.index(start) : html.index(end, html.index(start))]


def test_long_paths_show_the_file_name_with_the_full_path_on_hover() -> None:
    html = _render(nested_case())
    full = f'title="{LONG_FILE}:41"'
    summary = _between(html, '<p class="summary">', "</p>")
    assert f'<span class="path" {full}>input_pipeline.py:41</span>' in summary
    recs = _between(html, '<ol class="recs">', "</ol>")
    assert f'<code class="loc" {full}>input_pipeline.py:41</code>' in recs
    row = _between(html, '<tr class="bottleneck" data-stage="interleave-0">', "</tr>")
    assert f"{full}>input_pipeline.py:41</code>" in row
    graph = _between(html, '<svg class="fig graph"', "</svg>")
    assert "interleave-0 \u00b7 input_pipeline.py:41</text>" in graph
    assert f"source: {LONG_FILE}:41" in graph  # the node's tooltip
    visible = re.sub(r'title="[^"]*"|<title>.*?</title>', "", html, flags=re.S)
    assert LONG_FILE not in visible


def test_path_shortening_matches_whole_line_numbers_and_escapes_the_rest() -> None:
    at_4 = SourceLocation("/src/<b>/in.py", 4)
    text = "cache at /src/<b>/in.py:41, map at /src/<b>/in.py:4."
    html = str(shorten_paths(text, [at_4]))
    assert html.count('<span class="path"') == 1
    assert "/src/&lt;b&gt;/in.py:41," in html
    assert '<span class="path" title="/src/&lt;b&gt;/in.py:4">in.py:4</span>.' in html


def test_rejected_changes_are_marked_not_proposed_and_never_recommended() -> None:
    html = _render(input_bound_case())
    table = _between(html, '<table class="data what-ifs">', "</table>")
    ruled_out = re.findall(r'<tr class="ruled-out">.*?</tr>', table, re.S)
    assert len(ruled_out) == 1
    assert "not proposed</span> cache in memory after zip-0" in ruled_out[0]
    assert "Not proposed:" not in ruled_out[0]  # the label says it once
    assert table.count("<tr>") == 2  # the header and the one feasible change
    assert "cache" not in _between(html, '<ol class="recs">', "</ol>")


def test_unbounded_and_unknown_rates_are_words_not_symbols() -> None:
    html = _render(nested_case())
    prefetch = _between(html, '<tr class="" data-stage="prefetch-0">', "</tr>")
    assert "unbounded" in prefetch and "\u221e" not in html and "nan" not in html.lower()
    fixed = re.findall(r'<div class="metric">.*?</div>\s*</div>', html, re.S)
    if_fixed = next(m for m in fixed if "Predicted if fixed" in m)
    assert '<div class="m-value">\u2014</div>' in if_fixed and "not predicted" in if_fixed
    assert re.search(r'class="bar open".*?>unbounded</text>', html, re.S)


def test_headline_names_the_limit_that_follows_the_fix() -> None:
    html = _render(input_bound_case())
    headline = _between(html, 'class="headline', "What to change")
    assert "2.11\u00d7 the observed rate; next limit: CPU (2 cores)" in headline
    assert "batches per second reached the training loop" in headline


def test_consumer_bound_headline_says_what_the_pipeline_alone_gives_and_what_to_do() -> None:
    html = _render(consumer_bound_case())
    headline = _between(html, 'class="headline', "What to change")
    assert "training step" in headline and "Pipeline alone" in headline and "90/s" in headline
    advice = _between(html, '<p class="no-change">', "</p>")
    assert "Speed up the step itself" in advice


def test_nested_bodies_are_framed_inside_each_other() -> None:
    graph = _between(_render(nested_case()), '<svg class="fig graph"', "</svg>")
    frames = re.findall(
        r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" rx="8" '
        r'class="nest"/><text[^>]*>inside ([^<]*)</text>',
        graph,
    )
    boxes = {
        label.split(" (")[0]: (float(x), float(y), float(x) + float(w), float(y) + float(h))
        for x, y, w, h, label in frames
    }
    outer, inner = boxes["interleave-0"], boxes["interleave-0&gt;interleave-0"]
    assert outer[0] < inner[0] and outer[1] < inner[1]
    assert inner[2] < outer[2] and inner[3] < outer[3]
    assert outer[1] >= 0


def test_stage_table_fits_by_wrapping_nested_ids_and_folding_ran_as_into_the_kind() -> None:
    assert "interleave-0&gt;<wbr>interleave-0&gt;<wbr>TFRecord" in _render(nested_case())
    html = _render(input_bound_case())
    header = _between(html, '<table class="data stages">', "</thead>")
    assert len(re.findall(r"<th[ >]", header)) == 10 and "Ran as" not in header
    row = _between(html, '<tr class="bottleneck changed" data-stage="map-0">', "</tr>")
    assert "ran as ParallelMapV2/_5" in row


def test_adapter_notes_are_notes_not_knobs() -> None:
    profile = sample_profile()
    pipeline = profile.pipelines[0]
    batch = dataclasses.replace(
        pipeline.stage("batch-0"),
        knobs={"batch_size": 32, "cardinality": 75, "note": "fused into MapAndBatch"},
    )
    stages = tuple(batch if s.id == "batch-0" else s for s in pipeline.stages)
    pipelines = (dataclasses.replace(pipeline, stages=stages),)
    html = render_html(dataclasses.replace(profile, pipelines=pipelines), [sample_diagnosis()])
    row = _between(html, 'data-stage="batch-0">', "</tr>")
    assert "batch_size=32" in row and "cardinality" not in row and "note=" not in row
    note = _between(html, '<tr class="note-row " data-stage="batch-0">', "</tr>")
    assert "fused into MapAndBatch" in note


def test_a_dataloaders_rate_is_in_batches_when_it_batches() -> None:
    from plumber.analyzers.diagnose import diagnose_all
    from tests.unit.synthetic_profiles import loader_profile

    # GIVEN a DataLoader of batch_size 8, whose collation runs inside its workers
    profile = loader_profile((0.002, 0.002), (("Resize", 0.001, 0.001, False),),
                             num_workers=2, wait_s=9.0, step_s=1.0)
    headline = _between(render_html(profile, diagnose_all(profile)), 'class="headline',
                        "What to change")
    # THEN the observed rate counts batches, not elements
    assert "batches per second reached the training loop" in headline
