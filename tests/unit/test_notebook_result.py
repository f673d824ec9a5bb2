"""ProfileResult on synthetic profiles: DataFrames, charts, the HTML summary, saving.

The synthetic pipeline is an expensive map held to one call on 2 cores
(the analysis names it the bottleneck, bound by parallelism) followed by a
batch and a prefetch; no framework is needed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys

import pytest

from plumber.notebook import ProfileResult
from plumber.notebook.tables import BOUND_COLUMNS, STAGE_COLUMNS, WHAT_IF_COLUMNS
from plumber.records.profile import (
    ConsumerStats,
    Machine,
    Pipeline,
    Profile,
    RunInfo,
    SourceLocation,
    Stage,
    StageStats,
    TimeSeries,
)

EVIL = "<script>alert(1)</script>"


def _stage(sid: str, kind: str, elements: int, wall: float, inputs: tuple[str, ...] = (),
           **kw: object) -> Stage:
    return Stage(
        id=sid, kind=kind, op=kind.capitalize(), inputs=inputs,
        stats=StageStats(elements=elements, wall_time_s=wall, cpu_time_s=wall),
        **kw,  # type: ignore[arg-type]
    )


def expensive_map_profile(samples: int = 8, source_file: str = "train.py",
                          notes: tuple[str, ...] = ()) -> Profile:
    """Map: 0.1 s of CPU per root element at parallelism 1 -> 10/s; cores allow ~20/s."""
    stages = (
        _stage("source-0", "source", 1600, 0.01),
        _stage("map-0", "map", 1600, 10.0, ("source-0",), knobs={"parallelism": 1},
               source=SourceLocation(source_file, 12)),
        _stage("batch-0", "batch", 100, 0.05, ("map-0",), knobs={"batch_size": 16}),
        _stage("prefetch-0", "prefetch", 100, 0.005, ("batch-0",)),
    )
    pipeline = Pipeline(
        id="pipeline-0", root="prefetch-0", stages=stages,
        consumer=ConsumerStats("python_next", 100, 10.0, 0.1), duration_s=10.1,
    )
    t = tuple(0.25 * (i + 1) for i in range(samples))
    resources = TimeSeries(
        t=t,
        cpu_percent=tuple(50.0 for _ in t),
        per_core_percent=tuple((100.0, 0.0) for _ in t),
        process_cpu_percent=tuple(100.0 for _ in t),
        disk_read_bps=tuple(0.0 for _ in t),
        net_recv_bps=tuple(0.0 for _ in t),
        net_sent_bps=tuple(0.0 for _ in t),
        memory_used_bytes=tuple(4e9 for _ in t),
        process_rss_bytes=tuple(5e8 for _ in t),
    )
    return Profile(
        run=RunInfo(("plumber.profile", "steps=100"), "2025-01-01T00:00:00+00:00", 10.5, 0,
                    framework="tensorflow", bounded_by="steps", notes=notes),
        machine=Machine(2, 2.0, 16_000_000_000, 8_000_000_000),
        pipelines=(pipeline,),
        resources=resources,
    )


@pytest.fixture
def result() -> ProfileResult:
    return ProfileResult(expensive_map_profile())


def test_stages_frame_has_one_row_per_stage_and_marks_the_bottleneck(result):
    frame = result.stages
    assert list(frame.columns) == list(STAGE_COLUMNS)
    assert list(frame["stage"]) == ["source-0", "map-0", "batch-0", "prefetch-0"]
    bottleneck = frame[frame["bottleneck"]]
    assert list(bottleneck["stage"]) == ["map-0"]
    row = bottleneck.iloc[0]
    assert row["source"] == "train.py:12"
    assert row["knobs"].startswith("parallelism=1")
    assert row["max_rate"] == pytest.approx(10.0, rel=0.01)
    assert row["cpu_per_root_s"] == pytest.approx(0.1)
    assert frame["elements"].tolist() == [1600, 1600, 100, 100]


def test_unmeasured_values_are_nan_not_zero():
    profile = expensive_map_profile()
    pipeline = profile.pipelines[0]
    unmeasured = dataclasses.replace(
        pipeline.stages[3], stats=None, unmeasured_reason="not reported by TF"
    )
    stages = (*pipeline.stages[:3], unmeasured)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=stages),)
    )
    row = ProfileResult(profile).stages.set_index("stage").loc["prefetch-0"]
    assert math.isnan(row["max_rate"]) and math.isnan(row["cpu_per_root_s"])
    assert row["note"] == "not reported by TF"
    assert row["elements"] is not None and str(row["elements"]) == "<NA>"


def test_bounds_frame_lists_bounds_slowest_first_with_the_binding_one_marked(result):
    frame = result.bounds
    assert list(frame.columns) == list(BOUND_COLUMNS)
    assert list(frame["rate"]) == sorted(frame["rate"])
    binding = frame[frame["binding"]]
    assert list(binding["bound"]) == [result.diagnoses[0].bottleneck.name]
    assert binding.iloc[0]["rate"] == frame["rate"].min()


def test_what_if_frame_has_every_evaluated_change(result):
    frame = result.what_if
    assert list(frame.columns) == list(WHAT_IF_COLUMNS)
    assert len(frame) == len(result.diagnoses[0].what_ifs) > 0
    parallelism = frame[(frame["knob"] == "parallelism") & (frame["stage"] == "map-0")]
    assert not parallelism.empty and (parallelism["speedup"] > 1).all()


def test_resources_frame_is_indexed_by_time_and_leaves_absent_sensors_out(result):
    frame = result.resources
    assert frame.index.name == "t_s" and len(frame) == 8
    assert {"cpu_percent", "process_rss_bytes", "core0_percent", "core1_percent"} <= set(frame)
    assert "gpu_util_percent" not in frame  # no GPU in this profile
    assert frame["core0_percent"].tolist() == [100.0] * 8


def test_tables_of_a_run_without_pipelines_are_empty_with_their_columns():
    profile = dataclasses.replace(expensive_map_profile(samples=0), pipelines=())
    result = ProfileResult(profile)
    assert result.stages.empty and list(result.stages.columns) == list(STAGE_COLUMNS)
    assert result.bounds.empty and result.what_if.empty and result.resources.empty


def test_summary_headline_names_bottleneck_source_resource_and_rates(result):
    page = result._repr_html_()
    headline = page[: page.index("<p>")]
    assert "map-0 (map Map at train.py:12)" in headline
    assert "too little parallelism" in headline
    diagnosis = result.diagnoses[0]
    assert f"{diagnosis.observed_rate:.3g}/s observed" in headline
    assert "predicted if fixed" in headline
    assert re.search(r'<tr style="[^"]*bold[^"]*"><td[^>]*>map-0</td>', page)
    assert "num_parallel_calls=1" in page and "num_parallel_calls=2" in page


def test_summary_says_when_the_consumer_was_plumbers_own_loop():
    note = "the consumer is plumber's own loop, which takes elements as fast as possible"
    page = ProfileResult(expensive_map_profile(notes=(note,)))._repr_html_()
    assert "as fast as possible" in page


def test_summary_escapes_every_string_from_the_profile():
    profile = expensive_map_profile(source_file=f"/data/{EVIL}.py", notes=(EVIL,))
    pipeline = profile.pipelines[0]
    map_stage = dataclasses.replace(pipeline.stages[1], op=EVIL, knobs={"parallelism": 1,
                                                                         "note": EVIL})
    stages = (pipeline.stages[0], map_stage, *pipeline.stages[2:])
    profile = dataclasses.replace(
        profile,
        run=dataclasses.replace(profile.run, exit_status=1, error=f"ValueError: {EVIL}"),
        pipelines=(dataclasses.replace(pipeline, id=EVIL, stages=stages, notes=(EVIL,)),),
    )
    page = ProfileResult(profile)._repr_html_()
    assert "<script" not in page
    assert "&lt;script&gt;" in page


def test_summary_of_a_failed_run_without_pipelines_says_both():
    profile = dataclasses.replace(
        expensive_map_profile(),
        pipelines=(),
        run=dataclasses.replace(expensive_map_profile().run, exit_status=1,
                                error="TypeError: boom"),
    )
    page = ProfileResult(profile)._repr_html_()
    assert "The run failed (exit status 1): TypeError: boom" in page
    assert "No input pipeline was observed" in page
    assert repr(ProfileResult(profile)) == "<ProfileResult no pipeline observed>"


def test_recommend_returns_the_changes_and_shows_them_as_a_list(result):
    recommendations = result.recommend()
    assert recommendations == result.diagnoses[0].recommendations
    first = recommendations[0]
    assert (first.stage_id, first.old, first.new) == (
        "map-0", "num_parallel_calls=1", "num_parallel_calls=2"
    )
    assert "<ol><li><b>Raise the parallelism of map-0" in recommendations._repr_html_()


def test_text_forms_carry_the_terminal_summary_and_notes():
    result = ProfileResult(expensive_map_profile(notes=("stopped at steps=100",)))
    assert "Bottleneck  map-0" in str(result)
    assert "note: stopped at steps=100" in str(result)
    assert repr(result).startswith("<ProfileResult pipeline-0: bottleneck map-0")


def test_save_round_trips_and_report_writes_html(result, tmp_path):
    saved = result.save(tmp_path / "run" / "profile.json")
    assert ProfileResult.load(saved).profile == result.profile
    report = result.report(tmp_path / "run" / "report.html")
    page = report.read_text(encoding="utf-8")
    assert page.lower().startswith("<!doctype html>") and "map-0" in page


def test_plot_bounds_draws_each_bound_and_marks_the_binding_one(result):
    from matplotlib.figure import Figure

    figure = result.plot_bounds()
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert sorted(labels) == sorted(b.name for b in result.diagnoses[0].bounds)
    colors = {bar.get_facecolor() for bar in axes.patches}
    assert len(colors) == 2  # the binding bound stands out
    assert figure._repr_png_().startswith(b"\x89PNG")


def test_plot_resources_draws_cpu_io_and_memory(result):
    figure = result.plot_resources()
    assert len(figure.axes) == 3
    assert all(axes.get_lines() for axes in figure.axes)
    empty = ProfileResult(dataclasses.replace(expensive_map_profile(), pipelines=()))
    assert empty.plot_bounds().axes[0].texts  # says why there is nothing to draw


def test_missing_pandas_names_the_notebook_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.delitem(sys.modules, "plumber.notebook.tables", raising=False)
    with pytest.raises(ImportError, match=r"plumber-pipelines\[notebook\]"):
        result.stages  # noqa: B018 - the property access is the test
