"""The HTML report: content, markings, escaping, self-containment and size.

The profile and diagnosis are built by hand (``sample_profile`` /
``sample_diagnosis``, shared with the terminal tests), so these tests do
not depend on how the analysis computes anything.
"""

from __future__ import annotations

import dataclasses
import re

from plumber.analyzers.results import Bound, Diagnosis, Recommendation, StageAnalysis, WhatIf
from plumber.record import (
    ConsumerStats,
    Machine,
    Pipeline,
    Profile,
    RunInfo,
    SourceLocation,
    Stage,
    StageStats,
    ThreadCpu,
    TimeSeries,
)
from plumber.reports.html import render_html, write_html

SCRIPT = "<script>alert(1)</script>"


def _stage(sid: str, kind: str, op: str, inputs: tuple[str, ...] = (), **kw: object) -> Stage:
    stats = kw.pop("stats", StageStats(elements=1000, wall_time_s=2.0, cpu_time_s=1.5))
    return Stage(id=sid, kind=kind, op=op, inputs=inputs, stats=stats, **kw)  # type: ignore[arg-type]


def sample_pipeline() -> Pipeline:
    """files -> interleave(TFRecord body) -> map, zipped with labels -> filter -> batch -> prefetch.

    It has a nested body, a multi-input stage, a TF rewrite, a stage TF
    added, and an unmeasured stage.
    """
    src = SourceLocation("train.py", 10, "make")
    stages = (
        _stage("source-0", "source", "TensorSlice", source=src),
        _stage(
            "interleave-0",
            "interleave",
            "ParallelInterleaveV4",
            ("source-0",),
            knobs={"cycle_length": 4, "parallelism": -1},
            source=SourceLocation("train.py", 11),
        ),
        _stage("interleave-0>TFRecord", "source", "TFRecord", nested_in="interleave-0"),
        _stage(
            "map-0",
            "map",
            "ParallelMapV2",
            ("interleave-0",),
            knobs={"parallelism": 1},
            source=SourceLocation("train.py", 12),
            as_run=("ParallelMapV2/_5",),
            rewrite="map_parallelization",
        ),
        _stage("source-1", "source", "Range", source=SourceLocation("train.py", 13)),
        _stage("zip-0", "zip", "Zip", ("map-0", "source-1"), source=SourceLocation("train.py", 14)),
        _stage(
            "filter-0",
            "filter",
            "Filter",
            ("zip-0",),
            stats=None,
            unmeasured_reason="its node left the autotune model before it was polled",
        ),
        _stage("batch-0", "batch", "BatchV2", ("filter-0",), knobs={"batch_size": 32}),
        _stage("tf-prefetch-above-batch-0", "prefetch", "Prefetch", ("batch-0",), written=False),
    )
    consumer = ConsumerStats(source="python_next", steps=500, wait_s=6.2, step_s=3.8)
    return Pipeline(
        id="train",
        root="tf-prefetch-above-batch-0",
        stages=stages,
        consumer=consumer,
        duration_s=10.0,
        notes=("the last batch was partial",),
    )


def sample_profile(samples: int = 50, **run: object) -> Profile:
    """A finished run of ``sample_pipeline`` with ``samples`` resource samples."""
    wave = [float((i * 37) % 101) for i in range(samples)]
    resources = TimeSeries(
        t=tuple(i * 0.2 for i in range(samples)),
        cpu_percent=tuple(wave),
        process_cpu_percent=tuple(2 * w for w in wave),
        disk_read_bps=tuple(w * 1e6 for w in wave),
        net_recv_bps=tuple(w * 1e4 for w in wave),
        net_sent_bps=tuple(w * 1e3 for w in wave),
        process_rss_bytes=tuple(1e9 + w * 1e6 for w in wave),
    )
    info = RunInfo(
        command=("python", "train.py", "--epochs", "2"),
        started_at="2025-01-02T03:04:05Z",
        duration_s=12.5,
        exit_status=0,
        framework="tensorflow",
        framework_version="2.21.0",
        python_version="3.11.9",
        plumber_version="0.1.0",
    )
    machine = Machine(
        cores_logical=2,
        cores_usable=2.0,
        memory_total_bytes=8_000_000_000,
        memory_available_bytes=5_000_000_000,
        gpus=({"name": "Tesla T4", "uuid": "GPU-1234-secret"},),
        gpu_status="present",
    )
    return Profile(
        run=dataclasses.replace(info, **run),  # type: ignore[arg-type]
        machine=machine,
        pipelines=(sample_pipeline(),),
        resources=resources,
        threads=(ThreadCpu("tf_data_private_threadpool", 4, 7.5),),
    )


def sample_diagnosis() -> Diagnosis:
    """map-0 bound by CPU at 40/s; raising its parallelism would give 80/s."""
    map_loc = SourceLocation("train.py", 12)
    bounds = (
        Bound("map-0 at parallelism 1", "stage", 40.0, "25 ms CPU per batch", "map-0"),
        Bound("CPU (2 cores)", "cpu", 80.0, "2 cores / 25 ms"),
        Bound("consumer", "consumer", 131.0, "7.6 ms per step"),
        Bound("disk read", "disk", 5000.0, "cold read 500 MB/s"),
        Bound("prefetch", "stage", float("inf"), "pass-through", "tf-prefetch-above-batch-0"),
    )
    analyses = (
        StageAnalysis(
            "map-0", "map", "ParallelMapV2", 32.0, 0.025, 0.026, 1, 40.0, 0.04, "cpu", map_loc
        ),
        StageAnalysis("source-0", "source", "TensorSlice", 0.1, 1e-5, 1e-5, 1, 1e5, 0.0, "none"),
        StageAnalysis(
            "filter-0", "filter", "Filter", None, None, None, 1, None, None, "unmeasured"
        ),
    )
    recommendation = Recommendation(
        title="Parallelise the map",
        stage_id="map-0",
        source=map_loc,
        old="num_parallel_calls=None",
        new="num_parallel_calls=tf.data.AUTOTUNE",
        predicted_rate=80.0,
        speedup=2.1,
        reason="map-0 uses one core of two; the CPU bound is 80/s",
    )
    what_if = WhatIf(
        "map-0",
        "parallelism",
        "2",
        "parallelism 1 -> 2 at map-0 (train.py:12)",
        80.0,
        2.1,
        "water-filling over 2 cores",
    )
    return Diagnosis(
        pipeline_id="train",
        observed_rate=38.0,
        predicted_rate=40.0,
        bottleneck=bounds[0],
        bottleneck_kind="parallelism",
        bottleneck_stage="map-0",
        input_bound=True,
        stall_share=0.62,
        rate_if_fixed=80.0,
        summary="Input-bound: map-0 runs on one core while the other idles.",
        stages=analyses,
        bounds=bounds,
        what_ifs=(what_if,),
        recommendations=(recommendation,),
        warnings=("prediction within 5% of the observed rate",),
    )


def _graph(html: str) -> str:
    match = re.search(r'<svg class="fig graph".*?</svg>', html, re.S)
    assert match, "no pipeline graph"
    return match.group(0)


def test_headline_shows_summary_bottleneck_rates_and_stall_share() -> None:
    html = render_html(sample_profile(), [sample_diagnosis()])
    headline = html[html.index('class="headline') : html.index("What to change")]
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
    consumer = sample_diagnosis().bounds[2]
    diagnosis = dataclasses.replace(
        sample_diagnosis(),
        bottleneck=consumer,
        bottleneck_kind="consumer",
        bottleneck_stage=None,
        input_bound=False,
        summary="The training step is the limit; input is not the problem.",
    )
    html = render_html(sample_profile(), [diagnosis])
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
