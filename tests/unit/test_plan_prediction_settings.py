"""A plan's predicted rate is for the settings the model chose, and only those are checked.

GIVEN a plan whose settings changed after the model predicted its rate (by
``tune --search`` keeping the best of its trials, or by hand), THEN neither
tune's outcome, nor the report's plan, nor ``profile --plan`` sets a run of
the changed settings against that rate; a plan as the model wrote it, or
one moved to another cache path, is still checked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from plumber.analyzers.edits import outcome
from plumber.analyzers.planned import plan_checks
from plumber.capture.session import SessionOptions
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting, settings_fingerprint
from plumber.records.profile import AppliedPlan, PlannedRate
from plumber.reports.html import render_html
from plumber.tuner import search
from tests.report_samples import planned_case
from tests.unit.test_planned_checks import profiled
from tests.unit.test_report_plan import _plan_section as plan_section

MAP = StageRef("train.py", 12, "map")
ROOT = StageRef("train.py", 14, "prefetch")


def model_plan(parallelism: int = 2, cache: str | None = "memory") -> Plan:
    """A plan as derive_plan writes it: its prediction is for its own settings."""
    settings = (StageSetting(MAP, "map-0", parallelism=parallelism, cache=cache,
                             predicted_rate=30.0),
                StageSetting(ROOT, "prefetch-0", prefetch=-1, predicted_rate=30.0))
    pipeline = PipelinePlan(ROOT, settings, observed_rate=20.0, predicted_rate=30.0,
                            measured_rate_before=20.0, measured_rate_after=27.0,
                            measured_steady_rate_after=28.0,
                            predicted_for=settings_fingerprint(settings))
    return Plan(script="train.py", pipelines=(pipeline,))


def with_map(plan: Plan, **changes) -> Plan:
    """``plan`` with its map's setting changed as a user or the search would."""
    [pipeline] = plan.pipelines
    settings = tuple(dataclasses.replace(s, **changes) if s.stage == MAP else s
                     for s in pipeline.settings)
    return dataclasses.replace(plan, pipelines=(dataclasses.replace(pipeline, settings=settings),))


def test_the_model_s_plan_predicts_its_settings_across_a_save_and_a_load(tmp_path):
    plan = model_plan(cache=str(tmp_path / "cache-file"))
    [loaded] = Plan.load(plan.save(tmp_path / "plan.json")).pipelines
    assert loaded.predicted_for == plan.pipelines[0].predicted_for
    assert loaded.predicts_these_settings


def test_a_relative_cache_path_resolved_on_loading_still_matches(tmp_path):
    plan = model_plan(cache="caches/train-map-0")
    [loaded] = Plan.load(plan.save(tmp_path / "plan.json")).pipelines
    assert loaded.settings[0].cache != "caches/train-map-0"  # resolved in the cache folder
    assert loaded.predicts_these_settings


@pytest.mark.parametrize("changes", [
    {"parallelism": 3}, {"cache": None}, {"cache": "/elsewhere/file"}, {"prefetch": 4},
], ids=["parallelism", "cache dropped", "memory cache made a file", "prefetch added"])
def test_a_changed_setting_no_longer_matches_the_prediction(changes):
    [pipeline] = with_map(model_plan(), **changes).pipelines
    assert not pipeline.predicts_these_settings


def test_a_plan_that_does_not_say_what_it_predicted_is_taken_as_before():
    [pipeline] = with_map(model_plan(), parallelism=3).pipelines
    assert dataclasses.replace(pipeline, predicted_for=None).predicts_these_settings


def test_a_predicted_for_that_is_not_text_is_refused(tmp_path):
    data = json.loads(model_plan().to_json())
    data["pipelines"][0]["predicted_for"] = 7
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match=r"predicted_for must be a string, not 7"):
        Plan.load(path)


def test_tune_s_outcome_gives_no_prediction_error_for_changed_settings():
    [kept] = model_plan().pipelines
    assert "(prediction error 7%)" in outcome(kept, kept=True)
    [changed] = with_map(model_plan(), parallelism=3).pipelines
    said = outcome(changed, kept=True)
    assert "(prediction error" not in said
    assert ("the model predicted 30/s after start-up for the settings it chose, which these "
            "are not (changed by tune --search or by hand), so no prediction error is given"
            ) in said


def test_the_report_s_plan_shows_no_predicted_rate_for_changed_settings():
    profile, diagnoses, plan = planned_case()
    [pipeline] = plan.pipelines
    predicted_for = settings_fingerprint(pipeline.settings)
    as_chosen = dataclasses.replace(pipeline, predicted_for=predicted_for)
    html = plan_section(render_html(profile, diagnoses,
                                    dataclasses.replace(plan, pipelines=(as_chosen,))))
    assert "predicted <b>61.5/s</b>" in html
    changed = dataclasses.replace(as_chosen, settings=(
        dataclasses.replace(pipeline.settings[0], parallelism=5), *pipeline.settings[1:]))
    html = plan_section(render_html(profile, diagnoses,
                                    dataclasses.replace(plan, pipelines=(changed,))))
    assert "predicted <b>" not in html
    assert "so no prediction error is given" in html


def test_profile_plan_does_not_check_a_rate_predicted_for_other_settings():
    stale = PlannedRate("settings", "train.py", 14, "prefetch", 30.0, for_other_settings=True)
    [check] = plan_checks(profiled(AppliedPlan("plan.json", predicted=(stale,))))
    assert check.pipeline == "pipeline-0" and check.measured is not None
    assert check.expected is None and check.error is None
    said = check.sentence()
    assert "holds other settings than the 30/s it records was predicted for" in said
    assert said.endswith("so this run is not checked against it; pipeline-0 measured 25/s "
                         "over the whole iteration (no steady state)")


def test_a_search_that_keeps_other_values_leaves_the_prediction_unchecked(monkeypatch):
    pytest.importorskip("optuna")
    candidates: list[Plan] = []

    def measured(script, args, options, plan, reuse_process):
        candidates.append(plan)
        return (50.0 if plan.pipelines[0].settings[0].parallelism != 2 else 30.0,)

    monkeypatch.setattr(search, "measured_rates", measured)
    plan = model_plan()
    best, rate = search.search_plan(Path("train.py"), (), plan, 6, SessionOptions(),
                                    lambda message: None)
    assert candidates[0] == plan  # the model's plan is the first trial
    assert rate == 50.0 and best.pipelines[0].settings[0].parallelism != 2
    assert best.pipelines[0].predicted_for == plan.pipelines[0].predicted_for
    assert not best.pipelines[0].predicts_these_settings
