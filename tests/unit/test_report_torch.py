"""What the reports show of a torch DataLoader: its pool, its workers, its requests, its errors.

The case is ``torch_case`` from ``tests/report_samples.py``: a two-worker
loader reading 12 kB objects over HTTP, run for two iterations (so each
worker index has two processes, one of which grows 180 MB), whose first
transform raised in worker 1.
"""

from __future__ import annotations

import dataclasses
import re

from plumber.records.profile import Stage, StageStats
from plumber.reports.graph import NODE_H, layout
from plumber.reports.html import render_html
from plumber.reports.pool import member_shares, pool_members
from plumber.reports.terminal import render_summary
from tests.report_samples import (
    CROP_ERROR,
    SCRIPT,
    sample_diagnosis,
    sample_profile,
    torch_case,
    torch_pipeline,
)

MEMBERS = ("fetch", "transform_0", "transform_1", "collate")


def _html(payload: str = "") -> str:
    profile, diagnoses = torch_case(payload)
    return render_html(profile, diagnoses)


def _between(html: str, start: str, end: str) -> str:
    return html[html.index(start) : html.index(end, html.index(start))]


def _body(html: str) -> str:
    """The page without its stylesheet, whose selectors name every class."""
    return re.sub(r"<style>.*?</style>", "", html, flags=re.S)


def _rows(html: str) -> list[tuple[str, str]]:
    """(class, stage id) of the stage table's main rows, in order."""
    table = _between(html, '<table class="data stages">', "</table>")
    return re.findall(r'<tr class="((?!note-row)[^"]*)" data-stage="([^"]*)">', table)


def test_pool_members_follow_the_pool_row_indented_in_the_order_they_run() -> None:
    rows = _rows(_html())
    assert [sid for _, sid in rows] == ["workers", *MEMBERS]
    assert "member" not in rows[0][0]
    assert all("member" in flags.split() for flags, _ in rows[1:])


def test_the_pool_row_carries_the_bound_and_says_what_its_workers_run() -> None:
    html = _html()
    row = _between(html, '<tr class="bottleneck" data-stage="workers">', "</tr>")
    assert "9.92/s" in row and "latency" in row
    note = _between(html, '<tr class="note-row bottleneck" data-stage="workers">', "</tr>")
    assert "runs inside the 2 DataLoader workers, one after another" in note
    assert "fetch \u2192 transform_0 \u2192 transform_1 \u2192 collate" in note


def test_members_show_their_share_of_the_pool_and_their_cpu_and_wait() -> None:
    html = _html()
    fetch = _between(html, '<tr class="member" data-stage="fetch">', "</tr>")
    assert "79% of pool" in fetch and "98%" in fetch  # waiting: 4 ms CPU of 160 ms wall
    assert "4 ms" in fetch and "160 ms" in fetch
    assert "nested in workers" not in html


def test_member_shares_add_up_to_the_pool() -> None:
    shares = member_shares(torch_pipeline())
    assert set(shares) == set(MEMBERS)
    assert abs(sum(s.wall for s in shares.values()) - 1) < 1e-9
    assert round(shares["fetch"].waiting or 0, 3) == 0.975


def test_pool_members_are_ordered_by_their_inputs_not_the_records_order() -> None:
    pipeline = torch_pipeline()
    shuffled = dataclasses.replace(pipeline, stages=tuple(reversed(pipeline.stages)))
    assert pool_members(shuffled) == {"workers": MEMBERS}


def _graph(html: str) -> str:
    return _between(html, '<svg class="fig graph"', "</svg>")


def test_graph_draws_the_pool_as_one_box_holding_its_members_in_order() -> None:
    pipeline = torch_pipeline()
    placed = layout(pipeline)
    y = {sid: placed.positions[sid][1] for sid in ("workers", *MEMBERS)}
    assert y["workers"] < y["fetch"] < y["transform_0"] < y["transform_1"] < y["collate"]
    graph = _graph(_html())
    pool = re.search(r'<g class="node pool bottleneck" data-stage="workers" '
                     r'transform="translate\(([\d.]+),([\d.]+)\)">.*?<rect x="-8" '
                     r'width="([\d.]+)" height="([\d.]+)"', graph, re.S)
    assert pool, "the pool is not drawn as a box"
    top, height = float(pool.group(2)), float(pool.group(4))
    assert top + height >= y["collate"] + NODE_H  # the box holds its last member
    assert "each of the 2 workers runs, in turn:" in graph
    assert graph.index('data-stage="workers"') < graph.index('data-stage="fetch"')  # drawn under
    assert len(re.findall(r'class="edge"', graph)) == 3  # fetch -> t0 -> t1 -> collate
    assert 'class="edge nested"' not in graph
    assert "79% of pool time \u00b7 98% waiting" in graph
    # A bar under each member's text, where it fits: the one that raised has a line more.
    assert graph.count('class="share-track"') == 3


def test_what_reads_the_pool_is_placed_below_its_box_and_fed_from_its_bottom() -> None:
    pipeline = torch_pipeline()
    pin = Stage("pin_memory", "pin_memory", "pin_memory", ("workers",),
                stats=StageStats(100, 0.1, 0.1))
    pipeline = dataclasses.replace(pipeline, stages=(*pipeline.stages, pin), root="pin_memory")
    placed = layout(pipeline)
    assert placed.order == ("workers", *MEMBERS, "pin_memory")
    assert placed.positions["pin_memory"][1] > placed.positions["collate"][1] + NODE_H
    profile, diagnoses = torch_case()
    profile = dataclasses.replace(profile, pipelines=(pipeline,))
    graph = _graph(render_html(profile, diagnoses))
    assert len(re.findall(r'class="edge"', graph)) == 4


def test_workers_table_lists_every_process_of_every_iteration_and_flags_large_growth() -> None:
    html = _html()
    table = _between(html, '<table class="data narrow workers">', "</table>")
    assert "<th class=\"num\">Iteration</th>" in table
    rows = re.findall(r"<tr( class=\"large\")?>\s*<td class=\"num\">(\d)</td>"
                      r"<td class=\"num\">(\d)</td>\s*<td class=\"num\">(\d+)</td>", table)
    assert [(w, it, pid) for _, w, it, pid in rows] == [
        ("0", "1", "4101"), ("1", "1", "4102"), ("0", "2", "4201"), ("1", "2", "4202"),
    ]
    assert [bool(large) for large, *_ in rows] == [False, False, False, True]
    assert "+180 MB (+45%)" in table and "582 MB" in table
    assert "copy-on-read" in _between(html, '<p class="growth-warning">', "</p>")
    assert "new workers for each of its 2 iterations" in html


def test_workers_without_large_growth_have_no_warning_and_one_iteration_no_column() -> None:
    profile, diagnoses = torch_case()
    pipeline = profile.pipelines[0]
    calm = dataclasses.replace(pipeline, workers=pipeline.workers[:2])
    html = render_html(dataclasses.replace(profile, pipelines=(calm,)), diagnoses)
    table = _between(html, '<table class="data narrow workers">', "</table>")
    assert "Iteration" not in table and 'class="large"' not in table
    assert "growth-warning" not in _body(html)


def test_network_section_gives_the_analysis_paragraph_and_the_probe_basis() -> None:
    html = _html()
    assert '<a href="#network">Network</a>' in html
    section = _between(html, '<section id="network">', "</section>")
    assert "800 HTTP requests to bucket.s3.local:9000, 12 kB per element" in section
    assert "latency 20 ms median, 25 ms p90 per request" in section
    assert "the probe reached 100 MB/s, a floor on the link" in section
    assert "3 refused by the server (first with 6 in flight)" in section
    assert "1 failed (ConnectionResetError: connection reset by peer)" in section
    assert "replayed a 12 kB GET from bucket.s3.local 40 times" in section
    assert "200: 797, 503: 3" in section


def test_requests_of_a_run_with_several_pipelines_are_not_attributed_to_one() -> None:
    profile, diagnoses = torch_case()
    second = dataclasses.replace(profile.pipelines[0], id="loader-1")
    profile = dataclasses.replace(profile, pipelines=(*profile.pipelines, second))
    section = _between(render_html(profile, diagnoses), '<section id="network">', "</section>")
    assert "per element" not in section
    assert "not attributed to one, so bandwidth is over the whole run" in section


def test_a_stage_that_raised_says_what_and_in_which_worker_on_its_row() -> None:
    html = _html()
    assert '<tr class="member error" data-stage="transform_0">' in html
    note = _between(html, '<tr class="note-row member error" data-stage="transform_0">', "</tr>")
    assert f"raised {CROP_ERROR} (in worker 1 (pid 4202))" in note
    assert 'class="node error" data-stage="transform_0"' in _graph(html)
    notes = _between(html, '<div class="note-box">', "</div>")
    assert "the last batch was partial" in notes and "raised in transform_0" not in notes


def test_terminal_summary_tells_the_error_notes_memory_growth_and_network() -> None:
    profile, diagnoses = torch_case()
    text = render_summary(profile, diagnoses, "report.html", "profile.json")
    flat = " ".join(text.split())
    assert f"Error transform_0 raised {CROP_ERROR} (in worker 1 (pid 4202))" in flat
    assert "Note the last batch was partial" in flat
    assert "worker 1 (pid 4202) grew +180 MB (+45%) in memory: copy-on-read" in flat
    assert ("Network: 800 requests to bucket.s3.local:9000; 20 ms median, 25 ms p90 per "
            "request; 100 MB/s available; 3 refused (first with 6 in flight); 1 failed") in flat
    assert max(len(line) for line in text.splitlines()) < 100


def test_planted_markup_in_an_error_and_a_host_is_escaped() -> None:
    html = _html(SCRIPT)
    assert SCRIPT not in html
    assert html.count("<script") == 1  # the report's own
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    network = _between(html, '<section id="network">', "</section>")
    assert f"bucket.s3.local:9000{escaped}" in network
    note = _between(html, '<tr class="note-row member error" data-stage="transform_0">', "</tr>")
    assert escaped in note
    assert escaped in _graph(html)  # the node's tooltip holds the error in full


def test_a_tf_data_report_without_pools_workers_or_requests_keeps_its_structure() -> None:
    html = _body(render_html(sample_profile(), [sample_diagnosis()]))
    for absent in ('id="network"', "Worker processes", "k-pool", 'class="node pool',
                   "member", "stage-error", "share-track", "of pool"):
        assert absent not in html, absent
    graph = _graph(html)
    assert "inside interleave-0 (per input element)" in graph
    assert graph.count('class="edge nested"') == 1
    rows = [sid.replace("&gt;", ">") for _, sid in _rows(html)]
    assert rows == list(layout(sample_profile().pipelines[0]).order)
    text = render_summary(sample_profile(), [sample_diagnosis()])
    assert "Network" not in text and "Error" not in text and "Workers" not in text
