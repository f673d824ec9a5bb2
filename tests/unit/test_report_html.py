"""The HTML report: content, markings, escaping, self-containment and size.

The profile and diagnosis are built by hand in ``tests/report_samples.py``
(shared with the terminal and browser tests), so these tests do not depend
on how the analysis computes anything.
"""

from __future__ import annotations

import dataclasses
import re

from plumber.records.profile import SourceLocation
from plumber.reports.html import render_html, write_html
from tests.report_samples import SCRIPT, consumer_bound_diagnosis, sample_diagnosis, sample_profile


def _text(html: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities left as they are."""
    return re.sub(r"<[^>]*>", "", html)


def _graph(html: str) -> str:
    match = re.search(r'<svg class="fig graph".*?</svg>', html, re.S)
    assert match, "no pipeline graph"
    return match.group(0)


def test_headline_shows_summary_bottleneck_rates_and_stall_share() -> None:
    html = render_html(sample_profile(), [sample_diagnosis()])
    headline = _text(html[html.index('class="headline') : html.index("What to change")])
    assert "map-0 runs on one core while the other idles." in headline
    assert "map-0" in headline and "ParallelMapV2 at train.py:12" in headline
    assert "too little parallelism" in headline
    assert "38/s" in headline and "80/s" in headline and "62%" in headline


def test_recommendation_shows_source_line_change_and_gain() -> None:
    html = render_html(sample_profile(), [sample_diagnosis()])
    recs = html[html.index('<ol class="recs">') : html.index("</ol>")]
    assert "train.py:12" in recs
    assert "num_parallel_calls=None" in recs and "num_parallel_calls=tf.data.AUTOTUNE" in recs
    assert "80/s" in recs and "2.1\u00d7" in recs


def test_graph_draws_one_node_per_stage_and_marks_the_bottleneck() -> None:
    profile = sample_profile()
    graph = _graph(render_html(profile, [sample_diagnosis()]))
    drawn = re.findall(r'<g class="node[^"]*" data-stage="([^"]*)"', graph)
    expected = [s.id.replace(">", "&gt;") for s in profile.pipelines[0].stages]
    assert sorted(drawn) == sorted(expected)
    assert re.search(r'<g class="node bottleneck[^"]*" data-stage="map-0"', graph)
    assert "BOTTLENECK" in graph


def test_graph_shows_tf_changes_nesting_and_unmeasured_stages() -> None:
    graph = _graph(render_html(sample_profile(), [sample_diagnosis()]))
    assert re.search(r'class="node[^"]*changed[^"]*" data-stage="tf-prefetch-above-batch-0"', graph)
    assert "rewritten by TF: map_parallelization" in graph
    assert "inside interleave-0" in graph
    assert re.search(r'class="node[^"]*unmeasured[^"]*" data-stage="filter-0"', graph)
    assert "unmeasured: its node left" in graph


def test_unmeasured_stage_is_listed_in_the_stage_table_with_its_reason() -> None:
    html = render_html(sample_profile(), [sample_diagnosis()])
    assert re.search(r'<tr class="unmeasured" data-stage="filter-0">', html)
    note = re.search(r'<tr class="note-row unmeasured" data-stage="filter-0">.*?</tr>', html, re.S)
    assert note and "unmeasured: its node left the autotune model" in note.group(0)


def test_report_references_nothing_outside_the_file() -> None:
    html = render_html(sample_profile(), [sample_diagnosis()])
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"\bsrc\s*=", html)
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', html))
    assert "@import" not in html and "url(" not in html.replace("url(#arrow-", "")


def test_user_strings_are_escaped_everywhere() -> None:
    profile = sample_profile(command=("python", SCRIPT), error=SCRIPT, exit_status=1)
    pipeline = profile.pipelines[0]
    evil = dataclasses.replace(
        pipeline.stages[3], op=SCRIPT, source=SourceLocation(f"/data/{SCRIPT}.py", 7)
    )
    stages = tuple(evil if s.id == evil.id else s for s in pipeline.stages)
    pipelines = (dataclasses.replace(pipeline, stages=stages, element_spec=SCRIPT),)
    diagnosis = dataclasses.replace(sample_diagnosis(), summary=SCRIPT)
    html = render_html(dataclasses.replace(profile, pipelines=pipelines), [diagnosis])
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # the report's own small script


def test_machine_identifiers_beyond_the_gpu_name_are_not_rendered() -> None:
    html = render_html(sample_profile(), [sample_diagnosis()])
    assert "Tesla T4" in html and "GPU-1234-secret" not in html


def test_long_series_are_downsampled_to_keep_the_file_small() -> None:
    html = render_html(sample_profile(samples=100_000), [sample_diagnosis()])
    assert len(html.encode()) < 1_500_000
    for points in re.findall(r'<polyline points="([^"]*)"', html):
        assert len(points.split()) <= 600


def test_failed_run_is_announced_first_and_collected_data_still_shown() -> None:
    error = 'Traceback (most recent call last):\n  File "train.py", line 9\nValueError: bad record'
    html = render_html(sample_profile(exit_status=1, error=error), [sample_diagnosis()])
    banner = html.index("The run failed (exit status 1): ValueError: bad record")
    assert banner < html.index('class="pipeline"')
    assert "map-0 runs on one core" in html


def test_run_without_pipelines_says_none_was_observed() -> None:
    profile = dataclasses.replace(sample_profile(), pipelines=())
    html = render_html(profile, [])
    assert "No input pipeline was observed" in html
    assert "Machine CPU" in html


def test_pipeline_without_diagnosis_is_drawn_as_not_analysed() -> None:
    html = render_html(sample_profile(), [])
    assert "not analysed" in html
    assert len(re.findall(r'<g class="node', _graph(html))) == 9


def test_run_info_shows_capacities_and_unmeasured_disk() -> None:
    html = render_html(sample_profile(interrupted=True), [sample_diagnosis()])
    assert "The run was interrupted." in html
    assert "python train.py --epochs 2" in html
    assert "tensorflow 2.21.0" in html
    assert "2 of 2 logical" in html and "8 GB total" in html
    assert "Disk cold read</dt><dd>not measured" in html


def test_consumer_bound_pipeline_names_the_bound_not_a_stage() -> None:
    html = render_html(sample_profile(), [consumer_bound_diagnosis()])
    assert "consumer-bound" in html and "the consumer (training step)" in html
    assert not re.search(r'class="node bottleneck', html)


def test_each_pipeline_gets_its_own_section_and_graph() -> None:
    profile = sample_profile()
    second = dataclasses.replace(profile.pipelines[0], id="eval")
    html = render_html(dataclasses.replace(profile, pipelines=(profile.pipelines[0], second)), [])
    assert 'id="pipeline-0"' in html and 'id="pipeline-1"' in html
    assert html.count('<svg class="fig graph"') == 2
    assert 'id="arrow-pipeline-0"' in html and 'id="arrow-pipeline-1"' in html


def test_write_html_creates_the_file(tmp_path) -> None:
    path = write_html(tmp_path / "out" / "report.html", sample_profile(), [sample_diagnosis()])
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")
