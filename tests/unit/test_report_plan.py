"""The tuning plan as hand edits: one wording for the terminal and the HTML report.

Plans and profiles are built by hand (``tests/report_samples.py``), so these
tests check what a reader sees, not how the tuner derives a plan.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from plumber.analyzers.edits import outcome, setting_edits
from plumber.commands.tune import _print_plan
from plumber.records.plan import Plan, StageRef, StageSetting
from plumber.reports.html import render_html
from tests.report_samples import IMG, LONG_FILE, SCRIPT, nested_case, planned_case

REF = StageRef("train.py", 7, "map")


def _edits(setting: StageSetting, knobs: dict | None, loader: bool = False) -> list[str]:
    return [str(e) for e in setting_edits(setting, knobs, loader)]


def _plan_section(html: str) -> str:
    match = re.search(r'<div class="plan [^"]*">.*?</ol>\s*</div>', html, re.S)
    assert match, "no plan section"
    return match.group(0)


def test_parallelism_edit_shows_the_written_value_and_the_new_one():
    setting = StageSetting(REF, "map-0", parallelism=4)
    assert _edits(setting, {}) == ["num_parallel_calls=None -> num_parallel_calls=4"]
    assert _edits(setting, {"parallelism": -1}) == [
        "num_parallel_calls=tf.data.AUTOTUNE -> num_parallel_calls=4"]
    assert _edits(setting, None) == ["num_parallel_calls=(as written) -> num_parallel_calls=4"]


def test_cache_prefetch_and_thread_pool_are_worded_as_code_to_add():
    setting = StageSetting(REF, "batch-0", cache="memory", prefetch=-1, threads=12)
    assert _edits(setting, {}) == [
        "add .cache() after this line",
        "add .prefetch(tf.data.AUTOTUNE) after this line",
        "tf.data.Options().threading.private_threadpool_size = 12 "
        "(apply with .with_options(options) after this line)",
    ]
    to_file = StageSetting(REF, "map-0", cache="/data/cache", prefetch=3)
    assert _edits(to_file, {}) == ['add .cache("/data/cache") after this line',
                                   "add .prefetch(3) after this line"]


def test_a_dataloader_is_edited_in_its_own_argument_names():
    setting = StageSetting(StageRef("train.py", 9, "workers"), "workers", parallelism=6,
                           prefetch=4, persistent_workers=True)
    knobs = {"num_workers": 0, "prefetch_factor": None, "persistent_workers": False}
    assert _edits(setting, knobs, loader=True) == [
        "num_workers=0 -> num_workers=6",
        "prefetch_factor=None -> prefetch_factor=4",
        "persistent_workers=False -> persistent_workers=True",
    ]


def test_outcome_gives_measured_rates_prediction_and_a_dropped_verdict():
    _, _, plan = planned_case()
    (pipeline,) = plan.pipelines
    assert outcome(pipeline, kept=True) == (
        "measured 33.2/s as written -> 58.1/s tuned (1.75x); "
        "the model predicted 61.5/s after start-up, but the tuned runs measured no steady "
        "state (their epochs are shorter than their start-up), so it is compared with their "
        "whole iteration, which includes it: 6% apart, a rough check")
    _, _, dropped = planned_case(kept=False)
    assert outcome(dropped.rejected[0], kept=False).endswith(
        "not faster, so the plan is dropped and the pipeline kept as written")


def test_report_shows_each_edit_at_its_short_path_with_the_full_path_on_hover():
    profile, diagnoses, plan = planned_case()
    section = _plan_section(render_html(profile, diagnoses, plan))
    assert f'title="{LONG_FILE}:49">input_pipeline.py:49</code>' in section
    assert f'title="{LONG_FILE}:46">input_pipeline.py:46</code>' in section
    assert '<code class="old">num_parallel_calls=None</code>' in section
    assert '<code class="new">num_parallel_calls=4</code>' in section
    assert "private_threadpool_size = 12" in section
    assert "61.5/s" in section and "240/s" in section
    assert "From the second epoch on, decode no longer runs" in section


def test_report_shows_what_verification_measured():
    profile, diagnoses, plan = planned_case()
    section = _plan_section(render_html(profile, diagnoses, plan))
    assert "Verified by plumber tune" in section
    assert "33.2/s as written -&gt; 58.1/s tuned (1.75x)" in section


def test_report_and_terminal_show_the_spread_of_the_verification_runs(capsys):
    profile, diagnoses, plan = planned_case()
    (pipeline,) = plan.pipelines
    runs = dataclasses.replace(pipeline, measured_rates_before=(31.0, 33.2, 35.9),
                               measured_rates_after=(55.0, 58.1, 60.4))
    plan = dataclasses.replace(plan, pipelines=(runs,))
    spread = ("as written 31/s-35.9/s (median 33.2/s), tuned 55/s-60.4/s "
              "(median 58.1/s) over 3 interleaved rounds: 1.75x, rank test p = 0.05")
    assert spread in _plan_section(render_html(profile, diagnoses, plan))
    _print_plan(plan, profile)
    assert spread in " ".join(capsys.readouterr().err.split())


def test_a_dropped_plan_is_shown_as_not_recommended():
    profile, diagnoses, plan = planned_case(kept=False)
    html = render_html(profile, diagnoses, plan)
    section = _plan_section(html)
    assert 'class="plan dropped"' in section and "not recommended" in section
    assert "not faster, so the plan is dropped" in section
    assert "Tuning plan (dropped)" in html


def test_plan_strings_are_escaped():
    profile, diagnoses, plan = planned_case()
    section = _plan_section(render_html(profile, diagnoses, plan))
    assert SCRIPT not in section and IMG not in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "&lt;img src=x onerror=alert(2)&gt;" in section


def test_report_without_a_plan_has_no_plan_section_and_stays_self_contained():
    profile, diagnoses = nested_case()
    assert 'class="plan ' not in render_html(profile, diagnoses)
    html = render_html(*planned_case())
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<[^>]*\bsrc\s*=", html)  # the escaped payload's text is no tag


def test_a_plan_for_another_script_matches_no_pipeline():
    profile, diagnoses, plan = planned_case()
    elsewhere = Plan(script="/elsewhere/train.py", pipelines=plan.pipelines)
    assert 'class="plan ' not in render_html(profile, diagnoses, elsewhere)


def test_terminal_summary_words_the_edits_as_the_report_does(capsys):
    profile, diagnoses, plan = planned_case()
    _print_plan(plan, profile)
    printed = capsys.readouterr().err
    section = _plan_section(render_html(profile, diagnoses, plan))
    assert "33.2/s as written -> 58.1/s tuned (1.75x)" in printed
    assert "num_parallel_calls=None -> num_parallel_calls=4" in printed
    assert "private_threadpool_size = 12" in printed
    for line in printed.splitlines():
        if "  edit " in line:
            for edit in line.split(": ", 2)[-1].split("; "):
                new = edit.split(" -> ")[-1]
                assert str(new.replace("<", "&lt;").replace(">", "&gt;")
                           .replace('"', "&#34;")) in section, new


def test_plan_file_keeps_rejected_pipelines(tmp_path: Path):
    _, _, plan = planned_case(kept=False)
    assert Plan.load(plan.save(tmp_path / "plan.json")) == plan
