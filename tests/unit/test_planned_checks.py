"""The applied plan's predictions set against the run (analyzers/planned.py, reports/applied.py).

GIVEN a profile recording the plan its run applied, THEN each prediction is
matched to its pipeline (by written root for settings, by a stage at the cut
for an offload), and its error is published where the run can check it.
"""

from __future__ import annotations

import dataclasses

import pytest
from synthetic_profiles import make_profile, stage

from plumber.analyzers.planned import plan_checks
from plumber.records.profile import AppliedPlan, PlannedRate, Profile, SourceLocation
from plumber.reports.applied import applied_plan_lines
from plumber.reports.terminal import render_summary


def profiled(applied: AppliedPlan | None, root_file: str = "/home/u/job/train.py") -> Profile:
    """100 batches in 4 s (25/s), the root a prefetch at line 14 of ``root_file``."""
    profile = make_profile(
        stage("map-0", "map", 1600, 3.0, line=12),
        stage("batch-0", "batch", 100, 0.1, line=13),
        stage("prefetch-0", "prefetch", 100, 0.1, line=14),
        wait_s=3.0, step_s=1.0)
    [pipeline] = profile.pipelines
    stages = tuple(dataclasses.replace(s, source=SourceLocation(root_file, s.source.line))
                   for s in pipeline.stages)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=stages),), applied_plan=applied)


def settings(rate: float, line: int = 14, file: str = "train.py") -> PlannedRate:
    return PlannedRate("settings", file, line, "prefetch", rate)


def test_a_settings_prediction_is_matched_by_written_root_and_its_error_published():
    [check] = plan_checks(profiled(AppliedPlan("plan.json", predicted=(settings(30.0),))))
    assert check.pipeline == "pipeline-0"
    assert check.measured == pytest.approx(25.0)
    assert check.error == pytest.approx(0.2)
    assert "predicted 30/s; pipeline-0 measured 25/s" in check.sentence()
    assert "(prediction error 20%)" in check.sentence()


@pytest.mark.parametrize("file", ["train.py", "/home/u/job/train.py"])
def test_the_plan_may_name_the_file_relative_to_the_script_or_in_full(file):
    [check] = plan_checks(profiled(AppliedPlan("p.json", predicted=(settings(30.0, file=file),))))
    assert check.pipeline == "pipeline-0"


@pytest.mark.parametrize("prediction", [
    settings(30.0, line=13),               # a stage of the pipeline, not its root
    settings(30.0, file="other/train.py"),  # the same name in another folder
    PlannedRate("settings", "train.py", 14, "prefetch", 30.0, occurrence=1),
], ids=["not the root", "another file", "another occurrence"])
def test_a_prediction_for_a_pipeline_the_run_did_not_build_says_so(prediction):
    [check] = plan_checks(profiled(AppliedPlan("p.json", predicted=(prediction,))))
    assert check.pipeline is None and check.error is None
    assert "this run built no pipeline the plan names" in check.sentence()


def test_an_offload_prediction_is_shown_without_an_error_since_its_workers_are_not_counted():
    cut = PlannedRate("offload", "train.py", 13, "batch", 80.0, workers=4)
    [check] = plan_checks(profiled(AppliedPlan("p.json", data_service="grpc://h:5000",
                                               predicted=(cut,))))
    assert check.pipeline == "pipeline-0" and check.error is None
    assert "with 4 worker(s), each on a host like this one" in check.sentence()
    assert "cannot count the service's workers" in check.sentence()


@pytest.mark.parametrize("workers, expected", [(1, 30.0), (2, 55.0), (9, 80.0)])
def test_an_offload_is_checked_against_the_rate_for_the_workers_the_user_said(workers, expected):
    cut = PlannedRate("offload", "train.py", 13, "batch", 80.0, workers=3,
                      rates=(30.0, 55.0, 80.0))
    [check] = plan_checks(profiled(AppliedPlan("p.json", data_service="grpc://h:5000",
                                               predicted=(cut,), service_workers=workers)))
    assert check.expected == expected
    assert check.error == pytest.approx(abs(expected - 25.0) / 25.0)
    assert f"with the service's {workers} worker(s) (as --service-workers said)" in \
        check.sentence()


def test_workers_said_for_a_plan_without_rates_per_count_get_no_error():
    cut = PlannedRate("offload", "train.py", 13, "batch", 80.0, workers=3)
    [check] = plan_checks(profiled(AppliedPlan("p.json", predicted=(cut,), service_workers=2)))
    assert check.error is None
    assert "holds no prediction per worker count, so none for 2" in check.sentence()


def test_the_summary_names_the_plan_and_its_service_and_says_nothing_without_one():
    applied = AppliedPlan("plan.json", ("plan applied at map at train.py:12: parallelism 1 -> 2",),
                          "grpc://h:5000", (settings(30.0),))
    profile = profiled(applied)
    lines = applied_plan_lines(profile)
    assert lines[0] == ("this run applied the plan plan.json, its offload on the tf.data "
                        "service at grpc://h:5000")
    assert "Plan:    this run applied the plan plan.json" in render_summary(profile, ())
    assert applied_plan_lines(profiled(None)) == []
    assert "Plan:" not in render_summary(profiled(None), ())


def test_the_record_round_trips_through_json():
    applied = AppliedPlan("plan.json", ("a change",), "",
                          (settings(30.0), PlannedRate("offload", "t.py", 3, "map", 9.0,
                                                       workers=2, rates=(5.0, 9.0))), 2)
    profile = profiled(applied)
    assert Profile.from_dict(profile.to_dict()).applied_plan == applied
