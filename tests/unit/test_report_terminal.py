"""The terminal summary: bottleneck, rates, recommendations, paths, failures."""

from __future__ import annotations

import dataclasses

from plumber.reports.terminal import render_summary
from tests.report_samples import sample_diagnosis, sample_profile


def test_summary_names_the_bottleneck_its_resource_rates_and_fix() -> None:
    text = render_summary(sample_profile(), [sample_diagnosis()])
    assert "Pipeline train: input-bound" in text
    assert "map-0 (map ParallelMapV2 at train.py:12)" in text
    assert "too little parallelism" in text
    assert "38/s observed, 80/s predicted if fixed" in text
    assert "62% of the training loop's time" in text
    assert "Parallelise the map" in text and "train.py:12" in text


def test_summary_ends_with_the_report_and_profile_paths() -> None:
    text = render_summary(
        sample_profile(), [sample_diagnosis()], "out/report.html", "out/profile.json"
    )
    assert text.splitlines()[-2:] == ["Report:  out/report.html", "Profile: out/profile.json"]


def test_summary_lines_stay_below_100_characters() -> None:
    diagnosis = dataclasses.replace(sample_diagnosis(), summary="word " * 80)
    text = render_summary(sample_profile(), [diagnosis], "report.html", "profile.json")
    assert max(len(line) for line in text.splitlines()) < 100


def test_failed_run_is_the_first_line() -> None:
    profile = sample_profile(exit_status=2, error="RuntimeError: out of memory")
    first = render_summary(profile, [sample_diagnosis()]).splitlines()[0]
    assert first == "plumber: The run failed (exit status 2): RuntimeError: out of memory"


def test_summary_without_pipelines_says_none_was_observed() -> None:
    profile = dataclasses.replace(sample_profile(), pipelines=())
    assert "No input pipeline was observed" in render_summary(profile, [])


def test_only_the_top_recommendations_are_listed() -> None:
    diagnosis = sample_diagnosis()
    many = diagnosis.recommendations * 5
    text = render_summary(sample_profile(), [dataclasses.replace(diagnosis, recommendations=many)])
    assert "    3. Parallelise the map" in text and "    4." not in text
    assert "... and 2 more in the report" in text


def test_pipeline_without_diagnosis_is_reported_as_not_analysed() -> None:
    assert "Pipeline train: not analysed (9 stages recorded)" in render_summary(
        sample_profile(), []
    )


def test_the_analysis_warnings_stand_beside_the_verdict_as_in_the_report() -> None:
    # A stall share next to "not input-bound" needs the warning that explains it.
    warning = ("The loop waited 78% of its time although the measured stages should keep up "
               "with the step: start-up (filling buffers) or an unmeasured stage may be the "
               "cause.")
    diagnosis = dataclasses.replace(sample_diagnosis(), warnings=(warning,))
    lines = render_summary(sample_profile(), [diagnosis]).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  Warning "))
    assert " ".join(" ".join(lines[at:at + 2]).split()) == "Warning " + warning
    assert at < next(i for i, line in enumerate(lines) if line == "  Recommendations:")


def test_the_stall_is_the_steady_windows_and_the_whole_runs_is_given_where_start_up_moved_it():
    from plumber.analyzers.diagnose import diagnose_all
    from tests.unit.synthetic_profiles import loader_profile

    # GIVEN a loop that waited 9 s of its 10 s, 8.8 s of it before its steady window
    profile = loader_profile((0.002, 0.002), (("Resize", 0.001, 0.001, False),),
                             num_workers=2, wait_s=9.0, step_s=1.0)
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, steady_steps=99, steady_s=1.0,
                                   steady_wait_s=0.2)
    assert consumer.stall_share == 0.2 and consumer.run_stall_share == 0.9
    steady = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),))
    (diagnosis,) = diagnose_all(steady)
    # THEN the verdict and the stall line both read the steady window, and say so
    assert diagnosis.stall_share == 0.2
    printed = " ".join(render_summary(steady, [diagnosis]).split())
    assert ("Data stall 20% of the training loop's time waiting for data after start-up "
            "(90% with it)") in printed
    # AND where the wait was not timed over the window, the whole run's stall stands alone
    (whole,) = diagnose_all(profile)
    assert whole.stall_share == 0.9
    assert "with it)" not in render_summary(profile, [whole])
