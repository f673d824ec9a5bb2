"""The report on threads and waits: thread groups named for what they are, plumber's cost, and
the part of a stage's waiting spent waiting for a core."""

from __future__ import annotations

import dataclasses
import re

from plumber.records.profile import ThreadCpu
from plumber.reports.html import render_html
from plumber.reports.threads import profiler_overhead, thread_rows
from tests.report_samples import sample_diagnosis, sample_profile

#: A tf.data run under the ``plumber`` console script: TF's pool inherited the process name.
GROUPS = (
    ThreadCpu("plumber", 7, 11.0, "inherited", 3.5),
    ThreadCpu("plumber", 1, 2.0, "main", 0.25),
    ThreadCpu("plumber-sampler", 1, 0.3, "profiler", 0.01),
    ThreadCpu("plumber-tf-poll", 1, 0.2, "profiler", None),
)


def test_threads_that_inherited_the_process_name_are_the_frameworks_not_plumbers():
    rows = {(r.label, r.name): r for r in thread_rows(GROUPS)}
    framework = rows[("framework / other threads of the process", "plumber")]
    assert (framework.count, framework.cpu, framework.core_wait) == ("7", "11 s", "3.5 s")
    assert ("main thread (the script's Python)", "plumber") in rows
    profiler = [r for (lbl, _), r in rows.items() if lbl == "plumber (profiler overhead)"]
    assert [r.name for r in profiler] == ["plumber-sampler", "plumber-tf-poll"]


def test_a_group_whose_run_queue_wait_was_not_measured_shows_a_dash():
    row = next(r for r in thread_rows(GROUPS) if r.name == "plumber-tf-poll")
    assert row.core_wait == "\u2014"


def test_the_profiler_overhead_is_plumbers_own_threads_cpu_total():
    sentence = profiler_overhead(GROUPS)
    assert "plumber's own 2 threads in this process used 500 ms of CPU" in sentence
    assert "(3.7% of the CPU its threads used)" in sentence


def test_profiles_without_roles_show_the_bare_names_and_no_overhead_claim():
    old = (ThreadCpu("plumber", 8, 13.0),)
    assert profiler_overhead(old) == ""
    (row,) = thread_rows(old)
    assert (row.label, row.name) == ("\u2014", "plumber")


def test_the_html_report_shows_the_groups_labels_and_the_overhead():
    profile = dataclasses.replace(sample_profile(), threads=GROUPS)
    html = render_html(profile, [sample_diagnosis()])
    section = html[html.index("CPU by thread group"):]
    text = re.sub(r"<[^>]*>", "", section[: section.index("</section>")])
    assert "framework / other threads of the process" in text
    assert "Waited for a core" in text
    assert "Profiler overhead: plumber&#39;s own 2 threads" in text


def test_the_stage_table_shows_the_part_of_the_waiting_spent_waiting_for_a_core():
    diagnosis = sample_diagnosis()
    stages = tuple(
        dataclasses.replace(a, wait_fraction=0.8, core_wait_fraction=0.7) if i == 0 else a
        for i, a in enumerate(diagnosis.stages)
    )
    html = render_html(sample_profile(), [dataclasses.replace(diagnosis, stages=stages)])
    assert "80% (70% for a core)" in html
