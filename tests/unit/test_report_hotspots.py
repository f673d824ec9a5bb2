"""What the report, the terminal summary and the notebook show of a --hotspots profile."""

from __future__ import annotations

import dataclasses
import re

import pytest
from synthetic_hotspots import (
    CROP,
    FETCH,
    IDLE,
    LOOP,
    MAIN,
    PY,
    SITE,
    TENSOR,
    USER,
    WAIT,
    WORKER,
    sampled_profile,
)

from plumber.analyzers.diagnose import diagnose_all
from plumber.analyzers.hotspotadvice import focus_stage, suggest
from plumber.analyzers.hotspots import FoldedStack, hotspots
from plumber.records.profile import PyFrame
from plumber.reports.hotspots import ICICLE_WIDTH, headline_hotspot, icicle
from plumber.reports.html import render_html
from plumber.reports.terminal import render_summary

STACKS = ((WORKER, WORKER, TENSOR, 30), (WORKER, WORKER, CROP, 10),
          (WORKER, WORKER, IDLE, 20), (MAIN, MAIN, LOOP, 4), (MAIN, MAIN, WAIT, 6))


def test_the_headline_names_the_hottest_user_function_of_the_stage_in_the_bottleneck():
    profile = sampled_profile(*STACKS)
    (diagnosis,) = diagnose_all(profile)
    (pipeline,) = profile.pipelines
    stage = focus_stage(pipeline, diagnosis, hotspots(profile))
    assert stage.stage == "transform_1"
    assert headline_hotspot(stage) == (
        "to_tensor_slowly (train.py:30) in numpy asarray: 100% of transform_1's sampled "
        "Python time, computing")
    summary = render_summary(profile, [diagnosis])
    assert re.search(r"Hottest +to_tensor_slowly \(train\.py:30\) in numpy asarray", summary)


def test_a_stage_sampled_rarely_says_its_share_is_rough():
    profile = sampled_profile((WORKER, WORKER, TENSOR, 3), (MAIN, MAIN, LOOP, 4))
    (diagnosis,) = diagnose_all(profile)
    stage = focus_stage(profile.pipelines[0], diagnosis, hotspots(profile))
    assert stage.samples == 3
    assert headline_hotspot(stage) == (
        "to_tensor_slowly (train.py:30) in numpy asarray: 100% of transform_1's sampled "
        "Python time, computing (only 3 samples: a rough share; a longer run gives a "
        "firmer one)")


def test_the_stage_named_is_the_one_plumbers_timing_found_busiest_not_the_most_sampled():
    # A short run: py-spy caught the fetch more often than the transform that plumber's
    # timing of every call found busiest; the headline must not contradict the diagnosis.
    fetching = (*FETCH[:-1], PyFrame("Images.__getitem__", USER, 21))
    profile = sampled_profile((WORKER, WORKER, fetching, 9), (WORKER, WORKER, TENSOR, 5))
    (diagnosis,) = diagnose_all(profile)
    assert "Inside its workers, transform_1 (to_tensor_slowly)" in diagnosis.summary
    stage = focus_stage(profile.pipelines[0], diagnosis, hotspots(profile))
    assert stage.stage == "transform_1"
    assert focus_stage(profile.pipelines[0], None, hotspots(profile)).stage == "fetch"
    unsampled = sampled_profile((WORKER, WORKER, fetching, 9))
    assert focus_stage(unsampled.pipelines[0], diagnose_all(unsampled)[0],
                       hotspots(unsampled)) is None


def test_a_consumer_bound_pipeline_names_the_training_loop():
    profile = sampled_profile(*STACKS)
    (diagnosis,) = diagnose_all(profile)
    consumer_bound = dataclasses.replace(diagnosis, input_bound=False)
    stage = focus_stage(profile.pipelines[0], consumer_bound, hotspots(profile))
    assert headline_hotspot(stage).startswith(
        "train_step (train.py:60): 40% of the training loop's")


def test_the_html_report_has_the_hotspot_first_and_a_collapsible_section_per_stage():
    profile = sampled_profile(*STACKS)
    html = render_html(profile, diagnose_all(profile))
    headline = html[html.index('<div class="headline'):html.index("What to change")]
    assert "Hottest Python: <code>to_tensor_slowly (train.py:30)" in headline
    section = html[html.index('<section id="hotspots">'):]
    section = section[:section.index("</section>")]
    assert section.count('<details class="hotspot-stage"') == 4  # 2 transforms, pool, loop
    assert section.count('<details class="hotspot-stage" open>') == 1
    assert f'title="{USER}:30">train.py:30</span>' in section
    assert section.count('<svg class="fig icicle"') == 4
    assert 'href="#hotspots"' in html


def test_the_report_says_what_cpu_py_spy_itself_used_when_it_was_read():
    profile = sampled_profile(*STACKS)
    unread = render_html(profile, diagnose_all(profile))
    assert "py-spy itself used" not in unread
    read = dataclasses.replace(
        profile, hotspots=dataclasses.replace(profile.hotspots, sampler_cpu_s=0.15))
    section = render_html(read, diagnose_all(read))
    section = section[section.index('<section id="hotspots">'):]
    assert "py-spy itself used 150 ms of CPU, left out of the run&#39;s own." in section


def test_a_profile_without_samples_has_no_hotspots_anywhere():
    profile = dataclasses.replace(sampled_profile(*STACKS), hotspots=None)
    diagnoses = diagnose_all(profile)
    assert 'id="hotspots"' not in render_html(profile, diagnoses)
    assert "Hottest" not in render_summary(profile, diagnoses)


def test_names_from_the_sampled_code_are_escaped():
    hostile = (*TENSOR[:-2], PyFrame("<script>alert(1)</script>", USER, 30))
    profile = sampled_profile((WORKER, WORKER, hostile, 5))
    html = render_html(profile, diagnose_all(profile))
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html


def test_icicle_boxes_are_as_wide_as_their_samples_and_grey_when_waiting():
    chart = str(icicle((FoldedStack(("a", "b"), 3), FoldedStack(("a", "c"), 1, 1)), "x"))
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', chart)]
    assert widths == [ICICLE_WIDTH - 1, ICICLE_WIDTH * 3 / 4 - 1, ICICLE_WIDTH / 4 - 1]
    assert chart.count('class="hot-idle"') == 1
    assert 'height="36"' in chart  # two rows
    assert "<title>a: 4 samples (100%), 25% waiting</title>" in chart
    assert "<title>c: 1 sample (25%), 100% waiting</title>" in chart
    # The stage had 8 samples, only these stacks charted: shares are of the stage's.
    of_stage = str(icicle((FoldedStack(("a", "b"), 3), FoldedStack(("a", "c"), 1, 1)), "x", 8))
    assert "<title>a: 4 samples (50%), 25% waiting</title>" in of_stage


def test_the_hotspots_section_says_how_many_samples_were_left_out():
    from plumber.reports.hotspots import hotspots_view

    profile = sampled_profile(*STACKS)
    profile = dataclasses.replace(
        profile, hotspots=dataclasses.replace(profile.hotspots, dropped_samples=7))
    intro = hotspots_view(hotspots(profile), ()).intro
    assert intro.startswith("py-spy sampled the Python stacks 100 times a second per thread: "
                            "70 samples (7 more samples of rarer stacks were left out to keep "
                            "the profile small), 70 of them in a stage")
    assert "a thread waiting for a core counts as computing" in intro


def test_the_notebook_table_has_a_row_per_function_with_shares():
    pytest.importorskip("pandas")
    from plumber.notebook import ProfileResult

    frame = ProfileResult(sampled_profile(*STACKS)).hotspots
    row = frame[frame.stage == "transform_1"].iloc[0]
    assert (row.function, row.file, row.line, row.self_samples) == (
        "to_tensor_slowly", USER, 30, 30)
    assert row.self_share == 1.0 and row.self_s == 0.3 and row.library == "numpy asarray"
    assert set(frame[frame.function != ""].stage) == {"transform_1", "consumer"}
    crop = frame[frame.stage == "transform_0"].iloc[0]  # torchvision's code only
    assert (crop.function, crop.file, crop.self_samples, crop.computing_share) == ("", "", 10, 1.0)
    assert crop.library == "torch Module._wrapped_call_impl → torchvision RandomResizedCrop.forward"
    assert frame[frame.stage == "workers"].iloc[0].computing_share == 0.0  # waiting for work
    empty = ProfileResult(dataclasses.replace(sampled_profile(), hotspots=None)).hotspots
    assert empty.empty and "self_share" in empty.columns


def test_a_tf_map_of_graph_ops_is_said_to_run_in_cpp_with_its_cpu():
    from synthetic_profiles import make_profile, stage

    profile = make_profile(stage("source-0", "source", 100, 0.1),
                           stage("map-0", "map", 100, 8.0, 6.5, parallelism=1),
                           stage("batch-0", "batch", 10, 0.1), wait_s=9.0, step_s=1.0)
    loop = sampled_profile((MAIN, MAIN, LOOP, 4)).hotspots
    sampled = dataclasses.replace(profile, hotspots=loop)
    (diagnosis,) = diagnose_all(sampled)
    assert diagnosis.bottleneck_stage == "map-0"
    summary = " ".join(render_summary(sampled, [diagnosis]).split())
    assert ("Hottest map-0 runs TensorFlow ops in C++, where py-spy sees no Python frames; "
            "its ops took 6.5 s of CPU") in summary, summary


def _cpu_bound(profile):
    (diagnosis,) = diagnose_all(profile)
    return dataclasses.replace(diagnosis, bottleneck_kind="cpu", input_bound=True)


def test_a_dominant_function_of_a_cpu_bound_stage_is_the_line_to_make_cheaper():
    own_lines = (*TENSOR[:-1],)  # to_tensor_slowly computing on its own lines
    profile = sampled_profile((WORKER, WORKER, own_lines, 30), (WORKER, WORKER, CROP, 10))
    diagnosis = _cpu_bound(profile)
    first, second = suggest(profile.pipelines[0], diagnosis, hotspots(profile))
    assert (first.stage, first.function, first.file, first.line) == (
        "transform_1", "to_tensor_slowly", USER, 30)
    assert first.text.startswith("100% of transform_1's time is spent computing in "
                                 "to_tensor_slowly at train.py:30")
    assert "once per batch" in second.text
    html = render_html(profile, [diagnosis])
    box = html[html.index('class="note-box hotspot-suggestions"'):]
    assert "not part of a plan" in box[:300] and "to_tensor_slowly at train.py:30" in box
    assert diagnosis.recommendations == diagnose_all(profile)[0].recommendations
    summary = " ".join(render_summary(profile, [diagnosis]).split())
    assert "Suggestion 100% of transform_1's time" in summary


def test_pil_decoding_points_at_torchvision_io():
    decode = (*FETCH, PyFrame("Image.open", f"{SITE}/PIL/Image.py", 3400),
              PyFrame("ImageFile.load", f"{SITE}/PIL/ImageFile.py", 290))
    profile = sampled_profile((WORKER, WORKER, decode, 24), fetch_s=0.05)
    first, second = suggest(profile.pipelines[0], _cpu_bound(profile), hotspots(profile))
    assert first.function == "Images.__getitem__" and "(in PIL Image.open)" in first.text
    assert "torchvision.io.decode_jpeg" in second.text


#: torchvision's ImageFolder decoding in a worker: torch's fetcher, the dataset, its PIL loader.
FOLDER_DECODE = (*FETCH[:-1],
                 PyFrame("DatasetFolder.__getitem__", f"{SITE}/torchvision/datasets/folder.py",
                         245),
                 PyFrame("pil_loader", f"{SITE}/torchvision/datasets/folder.py", 264),
                 PyFrame("Image.convert", f"{SITE}/PIL/Image.py", 1067),
                 PyFrame("ImageFile.load", f"{SITE}/PIL/ImageFile.py", 425))


def test_a_library_dataset_decoding_with_pil_is_named_and_points_at_torchvision_io():
    reading = (*FETCH[:-1], PyFrame("Condition.wait", f"{PY}/threading.py", 320))
    profile = sampled_profile((WORKER, WORKER, FOLDER_DECODE, 27), (WORKER, WORKER, reading, 3),
                              fetch_s=0.05)
    diagnosis = _cpu_bound(profile)
    stage = focus_stage(profile.pipelines[0], diagnosis, hotspots(profile))
    assert headline_hotspot(stage) == (
        "no function of yours in fetch: 90% of its sampled Python time is computing in "
        "library code (torch _MapDatasetFetcher.fetch → PIL Image.convert)")
    (advice,) = suggest(profile.pipelines[0], diagnosis, hotspots(profile))
    assert (advice.stage, advice.function, advice.file, advice.line) == (
        "fetch", "torch _MapDatasetFetcher.fetch → PIL Image.convert", "", None)
    assert advice.text.startswith("90% of fetch's time is spent in library code decoding "
                                  "images with PIL")
    assert "torchvision.io.decode_jpeg" in advice.text and "loader argument" in advice.text
    summary = " ".join(render_summary(profile, [diagnosis]).split())
    assert "Suggestion 90% of fetch's time is spent in library code decoding images" in summary
    other_library = sampled_profile((WORKER, WORKER, CROP, 30), fetch_s=0.05)
    assert suggest(other_library.pipelines[0], _cpu_bound(other_library),
                   hotspots(other_library)) == ()


def test_a_library_call_that_computed_more_than_the_users_functions_is_named():
    # One sample in the user's lambda must not hide the PIL decoding of the other 27.
    in_lambda = (*FETCH[:-1], PyFrame("<lambda>", USER, 9))
    profile = sampled_profile((WORKER, WORKER, FOLDER_DECODE, 27), (WORKER, WORKER, in_lambda, 1),
                              fetch_s=0.05)
    diagnosis = _cpu_bound(profile)
    stage = focus_stage(profile.pipelines[0], diagnosis, hotspots(profile))
    assert stage.hottest.function == "<lambda>" and stage.library_leads
    assert headline_hotspot(stage) == (
        "library code in fetch, outside your functions: 96% of its sampled Python time is "
        "computing in torch _MapDatasetFetcher.fetch → PIL Image.convert")
    (advice,) = suggest(profile.pipelines[0], diagnosis, hotspots(profile))
    assert "torchvision.io.decode_jpeg" in advice.text


def test_a_stage_that_only_waited_names_its_function_waiting():
    reading = (*FETCH, PyFrame("SocketIO.readinto", f"{PY}/socket.py", 706))
    profile = sampled_profile((WORKER, WORKER, reading, 25), fetch_s=0.05)
    stage = focus_stage(profile.pipelines[0], _cpu_bound(profile), hotspots(profile))
    assert headline_hotspot(stage) == (
        "Images.__getitem__ (train.py:20) in socket SocketIO.readinto: fetch's sampled Python "
        "time was all waiting")
    assert suggest(profile.pipelines[0], _cpu_bound(profile), hotspots(profile)) == ()


def test_a_stage_sampled_rarely_gets_no_suggestion():
    own_lines = (*TENSOR[:-1],)
    for samples, expected in ((19, 0), (20, 2)):
        profile = sampled_profile((WORKER, WORKER, own_lines, samples))
        stage = focus_stage(profile.pipelines[0], _cpu_bound(profile), hotspots(profile))
        assert stage.few_samples == (samples < 20)
        assert len(suggest(profile.pipelines[0], _cpu_bound(profile), hotspots(profile))) == \
            expected
    profile = sampled_profile((WORKER, WORKER, own_lines, 1))
    assert headline_hotspot(focus_stage(profile.pipelines[0], _cpu_bound(profile),
                                        hotspots(profile))).endswith(
        "(only 1 sample: a rough share; a longer run gives a firmer one)")


def test_no_suggestion_when_no_function_dominates_or_the_stage_waits():
    profile = sampled_profile(*STACKS)
    found = hotspots(profile)
    (diagnosis,) = diagnose_all(profile)
    waits = dataclasses.replace(diagnosis, bottleneck_kind="latency", input_bound=True)
    assert suggest(profile.pipelines[0], waits, found) == ()
    spread = sampled_profile((WORKER, WORKER, TENSOR, 4), (WORKER, WORKER, CROP, 6))
    assert suggest(spread.pipelines[0], _cpu_bound(spread), hotspots(spread)) == ()


def test_the_hotspots_section_lists_tf_stages_that_ran_only_in_cpp():
    from synthetic_profiles import make_profile, stage

    profile = make_profile(stage("source-0", "source", 100, 0.1, 0.0),
                           stage("map-0", "map", 100, 8.0, 6.5, parallelism=1),
                           wait_s=9.0, step_s=1.0)
    sampled = dataclasses.replace(profile, hotspots=sampled_profile((MAIN, MAIN, LOOP, 4)).hotspots)
    html = render_html(sampled, diagnose_all(sampled))
    section = html[html.index('<section id="hotspots">'):]
    assert "<li>pipeline-0 / map-0: 6.5 s of CPU</li>" in section
    assert "source-0" not in section[:section.index("</section>")]
