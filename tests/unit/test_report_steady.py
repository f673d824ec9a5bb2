"""The steady window on the report's resource charts: shaded, its means stated, or said missing.

Samples every 0.5 s from 0.5 s to 4 s; the window from 1 s to 3 s holds the
samples at 1.5, 2, 2.5 and 3 s (a sample measures the interval that ends at
its time, so the one at 1 s belongs to the start-up before it).
"""

from __future__ import annotations

import dataclasses
import re

from plumber.analyzers.diagnose import diagnose_all
from plumber.records.profile import Pipeline, Profile, SteadySpan, TimeSeries
from plumber.reports.charts import timelines
from plumber.reports.html import render_html
from plumber.reports.steady import steady_note, steady_windows, window_mean
from tests.unit.synthetic_profiles import make_profile, stage

T = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
#: Whole run 400 / 8 = 50%; window (40 + 50 + 60 + 70) / 4 = 55%.
MACHINE = (90.0, 80.0, 40.0, 50.0, 60.0, 70.0, 10.0, 0.0)
#: Whole run 960 / 8 = 120%; window (150 + 150 + 190 + 170) / 4 = 165%.
PROCESS = (100.0, 100.0, 150.0, 150.0, 190.0, 170.0, 50.0, 50.0)
#: Whole run 20 MB / 8 = 2.5 MB/s; window 20 MB / 4 = 5 MB/s.
DISK = (0.0, 0.0, 2e6, 4e6, 6e6, 8e6, 0.0, 0.0)
RSS = (1e9,) * 8

WINDOW = SteadySpan(start_s=1.0, end_s=3.0, steps=40)


def _profile(*spans: SteadySpan, steady_steps: int | None = 40) -> Profile:
    resources = TimeSeries(t=T, cpu_percent=MACHINE, process_cpu_percent=PROCESS,
                           disk_read_bps=DISK, process_rss_bytes=RSS)
    profile = make_profile(stage("map-0", "map", 100, 2.0), wait_s=1.0, step_s=2.5,
                           steps=41, resources=resources)
    return _with_consumer(profile, steady_steps=steady_steps,
                          steady_s=2.0 if steady_steps else None, steady_spans=spans)


def _with_consumer(profile: Profile, **fields: object) -> Profile:
    (pipeline,) = profile.pipelines
    assert pipeline.consumer is not None
    consumer = dataclasses.replace(pipeline.consumer, **fields)  # type: ignore[arg-type]
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def _captions(profile: Profile) -> dict[str, str]:
    return {c.title: c.caption for c in timelines(profile.resources, steady_windows(profile))}


def _figure(html: str, title: str) -> str:
    start = html.index(f"<strong>{title}</strong>")
    return html[start : html.index("</figure>", start)]


def test_the_mean_over_the_window_counts_the_samples_taken_inside_it():
    assert window_mean(T, MACHINE, (WINDOW,)) == 55.0
    assert window_mean(T, MACHINE, (SteadySpan(1.0, 2.0, 5), SteadySpan(3.0, 4.0, 5))) == 25.0
    assert window_mean(T, MACHINE, (SteadySpan(1.1, 1.4, 1),)) is None
    assert window_mean(T, (float("nan"), *MACHINE[1:]), (SteadySpan(0.0, 1.0, 2),)) == 80.0


def test_charts_the_verdict_uses_state_their_steady_mean_beside_the_whole_runs():
    captions = _captions(_profile(WINDOW))
    assert captions["Machine CPU"] == (
        "CPU: mean 50% over the run, 55% over the steady window (shaded), peak 90%"
    )
    assert captions["Process CPU (100% = one core)"] == (
        "process: mean 120% over the run, 165% over the steady window (shaded), peak 190%"
    )
    assert captions["Disk reads"] == (
        "read: mean 2.5 MB/s over the run, 5 MB/s over the steady window (shaded), peak 8 MB/s"
    )
    assert captions["Process memory (RSS)"] == "RSS: mean 1 GB, peak 1 GB"


def test_every_chart_shades_the_window_over_its_time_span():
    charts = timelines(_profile(WINDOW).resources, steady_windows(_profile(WINDOW)))
    # The axis ends at the last sample (4 s) over 442 px from x = 58: 1 s to 3 s is
    # x = 58 + 442 / 4 = 168.5, 221 px wide, over the plot's 102 px from y = 24.
    band = '<rect x="168.5" y="24" width="221" height="102" class="steady">'
    for chart in charts:
        assert str(chart.svg).count(band) == 1, chart.title
        assert "steady window: 1 s to 3 s, 40 steps after the first" in str(chart.svg)


def test_the_report_page_shades_the_window_and_explains_it():
    profile = _profile(WINDOW)
    html = render_html(profile, list(diagnose_all(profile)))
    machine = _figure(html, "Machine CPU")
    assert 'class="steady"' in machine
    assert "55% over the steady window (shaded)" in machine
    assert "The shaded span is the steady window" in html


def test_without_a_window_the_charts_say_so_and_shade_nothing():
    profile = _profile(steady_steps=None)
    captions = _captions(profile)
    assert captions["Machine CPU"] == "CPU: mean 50% over the run, no steady window found, peak 90%"
    html = render_html(profile, list(diagnose_all(profile)))
    assert 'class="steady"' not in html
    note = steady_note(steady_windows(profile))
    assert note.startswith("No steady window was found (no iterator delivered a step")
    assert "start-up included" in note and note in html.replace("&#39;", "'")


def test_a_profile_that_predates_the_spans_says_it_does_not_record_the_window():
    note = steady_note(steady_windows(_profile()))
    assert "does not record when it ran" in note


def test_several_pipelines_each_get_their_own_steady_mean():
    profile = _profile(WINDOW)
    (first,) = profile.pipelines
    assert first.consumer is not None
    second = dataclasses.replace(
        first, id="pipeline-1",
        consumer=dataclasses.replace(first.consumer, steady_spans=(SteadySpan(2.0, 3.0, 9),)),
    )
    unseen = Pipeline(id="pipeline-2", root=first.root, stages=first.stages)
    profile = dataclasses.replace(profile, pipelines=(first, second, unseen))
    # pipeline-1's window holds the samples at 2.5 and 3 s: (60 + 70) / 2 = 65%.
    assert _captions(profile)["Machine CPU"] == (
        "CPU: mean 50% over the run, 55% over pipeline-0's steady window, "
        "65% over pipeline-1's steady window (shaded), peak 90%"
    )
    svg = str(timelines(profile.resources, steady_windows(profile))[0].svg)
    assert len(re.findall('class="steady"', svg)) == 2
    assert "steady window of pipeline-1: 2 s to 3 s" in svg
    note = steady_note(steady_windows(profile))
    assert "steady window of pipeline-0, pipeline-1" in note
    assert "No steady window for pipeline-2: the training loop was not observed." in note
