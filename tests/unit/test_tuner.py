"""The tuner's pure parts: plan files, joint allocation, plan derivation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from synthetic_profiles import loader_profile, make_profile, stage

from plumber.analyzers.allocate import allocate
from plumber.analyzers.diagnose import diagnose_all, scene
from plumber.analyzers.edits import is_loader, stage_edits
from plumber.records.appliable import TF_KINDS
from plumber.records.plan import (
    PLAN_SCHEMA_VERSION,
    PipelinePlan,
    Plan,
    PlanError,
    StageRef,
    StageSetting,
    portable_path,
    resolve_path,
)
from plumber.reports.html import render_html
from plumber.reports.terminal import render_summary
from plumber.tuner.derive import derive_plan

SCRIPT = Path("/work/project/train.py")


def sample_plan() -> Plan:
    ref = StageRef("train.py", 12, "map", 1)
    return Plan(
        script="train.py",
        pipelines=(PipelinePlan(
            root=StageRef("train.py", 14, "prefetch"),
            settings=(StageSetting(ref, "map-1", parallelism=3, cache="memory",
                                   reason="why", predicted_rate=40.0),),
            observed_rate=20.0, predicted_rate=40.0,
            measured_rate_before=19.5, measured_rate_after=38.0,
        ),),
        notes=("a note",),
    )


def test_plan_round_trips_through_its_json_file(tmp_path):
    plan = sample_plan()
    assert Plan.load(plan.save(tmp_path / "plan.json")) == plan


def test_plan_from_a_newer_schema_is_refused_with_a_clear_message(tmp_path):
    data = json.loads(sample_plan().to_json())
    data["schema_version"] = PLAN_SCHEMA_VERSION + 1
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(PlanError, match="newer than this plumber"):
        Plan.load(tmp_path / "p.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [("{oops", "not a readable JSON plan"), ('{"a": 1}', "not a plumber plan"),
     ('{"kind": "plumber-plan", "schema_version": 1}', "malformed plan")],
)
def test_bad_plan_files_raise_plan_errors(tmp_path, content, message):
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(PlanError, match=message):
        Plan.load(tmp_path / "p.json")


def test_stage_paths_are_stored_relative_to_the_script_folder():
    assert portable_path("/work/project/lib/data.py", SCRIPT.parent) == "lib/data.py"
    assert portable_path("/elsewhere/data.py", SCRIPT.parent) == "/elsewhere/data.py"
    assert resolve_path("lib/data.py", SCRIPT.parent) == "/work/project/lib/data.py"


def test_one_heavy_map_held_to_one_call_gets_every_core():
    # map: 2 s CPU over 100 root elements = 20 ms each at parallelism 1 -> 50/s;
    # on 4 cores water-filling gives it 4 calls -> 200/s, consumer allows 1000/s.
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 2.0, parallelism=1, knobs={"parallelism": 1}, line=5),
        wait_s=1.9, step_s=0.1, cores=4.0,
    )
    model = scene(profile, profile.pipelines[0])
    allocation = allocate(model)
    assert allocation.parallelism == {"map-0": 4}
    assert allocation.predicted_rate == pytest.approx(4 / 0.02, rel=0.05)


def test_cores_are_shared_in_proportion_to_cpu_demand():
    # decode 30 ms, augment 10 ms per root element on 4 cores: 3 + 1 equalises
    # the rates (100/s each); any other split leaves one stage slower. map-1
    # keeps the one call it had, so only map-0 changes.
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 3.0, parallelism=1, knobs={"parallelism": 1}, line=5),
        stage("map-1", "map", 100, 1.0, parallelism=1, knobs={"parallelism": 1}, line=6),
        wait_s=3.9, step_s=0.1, cores=4.0,
    )
    allocation = allocate(scene(profile, profile.pipelines[0]))
    assert allocation.parallelism == {"map-0": 3}
    assert allocation.predicted_rate == pytest.approx(100, rel=0.05)


def test_latency_bound_read_gets_concurrency_from_littles_law_beyond_the_cores():
    # fetch: 10 ms wall, 0.5 ms CPU per root element, so it waits; the consumer
    # takes 500/s, so 1.25 x 500/s x 10 ms = 6.25 -> 7 calls in flight on 2 cores.
    profile = make_profile(
        stage("source-0", "source", 100, 0.001),
        stage("map-0", "map", 100, 1.0, cpu=0.05, parallelism=1, line=5),
        wait_s=0.8, step_s=0.2, cores=2.0,
    )
    allocation = allocate(scene(profile, profile.pipelines[0]))
    assert allocation.parallelism == {"map-0": 7}
    assert "Little's law" in allocation.reasons["map-0"]
    assert allocation.threads == 7 + 2  # the waiting calls plus one thread per core


def test_a_light_stage_beside_a_heavy_one_does_not_take_a_core_from_it():
    # GIVEN decode 8 ms and a flip 0.2 ms of CPU per root element, both at one call,
    # on 2 cores (the multi_epoch benchmark). Counting the flip's call as a core
    # left decode at one call; the CPU bound (2 / 8.2 ms = 244/s) is the budget.
    profile = make_profile(
        stage("source-0", "source", 100, 0.001),
        stage("map-0", "map", 100, 0.8, parallelism=1, knobs={"parallelism": 1}, line=5),
        stage("map-1", "map", 100, 0.02, parallelism=1, knobs={"parallelism": 1}, line=6),
        wait_s=0.8, step_s=0.02, cores=2.0,
    )
    allocation = allocate(scene(profile, profile.pipelines[0]))
    assert allocation.parallelism == {"map-0": 2}
    assert allocation.predicted_rate == pytest.approx(2 / 0.00821, rel=0.05)
    assert allocation.threads is None


def test_stages_of_equal_demand_are_raised_together():
    # Raising one of two equally slow stages alone raises no rate; both need 2 calls.
    profile = make_profile(
        stage("source-0", "source", 100, 0.001),
        stage("map-0", "map", 100, 1.0, parallelism=1, knobs={"parallelism": 1}, line=5),
        stage("map-1", "map", 100, 1.0, parallelism=1, knobs={"parallelism": 1}, line=6),
        wait_s=1.9, step_s=0.1, cores=4.0,
    )
    allocation = allocate(scene(profile, profile.pipelines[0]))
    assert allocation.parallelism == {"map-0": 2, "map-1": 2}


def test_a_waiting_stage_that_keeps_its_calls_gets_no_thread_pool():
    # fetch waits (1 ms wall, no CPU) but one call already outruns the 10 ms decode,
    # so Little's law leaves it at one call, and no pool is sized for it.
    profile = make_profile(
        stage("source-0", "source", 100, 0.001),
        stage("map-0", "map", 100, 0.1, cpu=0.0, parallelism=1, line=5),
        stage("map-1", "map", 100, 1.0, parallelism=1, knobs={"parallelism": 1}, line=6),
        wait_s=0.9, step_s=0.1, cores=2.0,
    )
    allocation = allocate(scene(profile, profile.pipelines[0]))
    assert "map-0" not in allocation.parallelism
    assert allocation.threads is None


def test_stages_left_to_autotune_are_left_alone_when_they_compute():
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 2.0, parallelism=2, knobs={"parallelism": -1}, line=5),
        wait_s=0.9, step_s=0.1, cores=2.0,
    )
    assert allocate(scene(profile, profile.pipelines[0])).parallelism == {}


def test_derived_plan_names_stages_by_source_line_and_ends_with_a_prefetch():
    profile = make_profile(
        stage("source-0", "source", 100, 0.01, line=4),
        stage("map-0", "map", 100, 2.0, parallelism=1, knobs={"parallelism": 1}, line=5),
        stage("batch-0", "batch", 10, 0.01, knobs={"batch_size": 10}, line=6),
        wait_s=1.9, step_s=0.1, cores=2.0,
    )
    plan = derive_plan(profile, diagnose_all(profile), Path("train.py"))
    (pipeline,) = plan.pipelines
    assert pipeline.root == StageRef("train.py", 6, "batch")
    settings = {s.stage_id: s for s in pipeline.settings}
    assert settings["map-0"].parallelism == 2
    assert settings["map-0"].stage == StageRef("train.py", 5, "map")
    assert settings["batch-0"].prefetch == -1


def test_consumer_bound_pipeline_gets_no_plan():
    profile = make_profile(
        stage("source-0", "source", 100, 0.01, line=4),
        stage("map-0", "map", 100, 0.2, parallelism=1, knobs={"parallelism": 1}, line=5),
        wait_s=0.01, step_s=5.0, cores=2.0,
    )
    plan = derive_plan(profile, diagnose_all(profile), Path("train.py"))
    assert plan.pipelines == ()
    assert "The input pipeline is not the bottleneck" in plan.notes[0]


def zipped_profile(root_kind: str):
    """Two maps (one heavy, held to one call) zipped, with ``root_kind`` on top of the zip."""
    stages = [
        stage("source-0", "source", 100, 0.01, line=4),
        stage("map-0", "map", 100, 2.0, parallelism=1, knobs={"parallelism": 1}, line=4),
        stage("source-1", "source", 100, 0.01, line=5),
        dataclasses.replace(stage("map-1", "map", 100, 0.01, parallelism=1,
                                  knobs={"parallelism": 1}, line=5), inputs=("source-1",)),
        dataclasses.replace(stage("zip-0", "zip", 100, 0.01, line=6),
                            inputs=("map-0", "map-1")),
    ]
    if root_kind == "config":
        stages.append(stage("config-0", "config", 100, 0.01, line=7))
    return make_profile(*stages, wait_s=1.9, step_s=0.1, cores=2.0)


def test_a_pipeline_ending_in_a_zip_gets_no_prefetch_a_plan_cannot_place_and_a_note():
    profile = zipped_profile("zip")
    plan = derive_plan(profile, diagnose_all(profile), Path("train.py"))
    (pipeline,) = plan.pipelines
    assert {s.stage_id for s in pipeline.settings} == {"map-0"}
    assert any("ends in zip-0 (zip)" in note and "by hand" in note for note in plan.notes)


def test_options_at_the_root_take_the_prefetch_a_plan_adds_at_the_end():
    profile = zipped_profile("config")
    plan = derive_plan(profile, diagnose_all(profile), Path("train.py"))
    (pipeline,) = plan.pipelines
    settings = {s.stage_id: s for s in pipeline.settings}
    assert settings["config-0"].prefetch == -1
    assert settings["config-0"].stage == StageRef("train.py", 7, "config")


def test_every_kind_derive_may_plan_is_one_the_tf_applier_intercepts():
    # zip and sources are built by static methods and constructors, which no applier sees
    assert {"map", "interleave", "batch", "prefetch", "config"} <= TF_KINDS
    assert not {"zip", "source", "concatenate"} & TF_KINDS


def one_map_profile(map_wall_s: float, wait_s: float):
    """100 steps of 10 ms against one map held to one call (its bound: 100 / map_wall_s)."""
    return make_profile(
        stage("source-0", "source", 100, 0.01, line=4),
        stage("map-0", "map", 100, map_wall_s, parallelism=1, knobs={"parallelism": 1}, line=5),
        wait_s=wait_s, step_s=1.0, cores=2.0,
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("map_wall_s", "wait_s", "verdict"), [
    (0.95, 0.05, "Too close to call"),  # map 105/s, step 100/s: within the noise
    (1.08, 0.6, "Too close to call"),  # map 93/s below the step, still within it
    (0.5, 0.05, "The input pipeline is not the bottleneck"),  # map 200/s, step 100/s
])
def test_profile_and_tune_print_one_verdict_and_tune_changes_nothing_it_cannot_back(
        map_wall_s, wait_s, verdict):
    # GIVEN one profile, read by profile's terminal summary and by tune's derive
    profile = one_map_profile(map_wall_s, wait_s)
    diagnoses = diagnose_all(profile)
    # WHEN both report on it
    printed_by_profile = one_line(render_summary(profile, diagnoses))
    plan = derive_plan(profile, diagnoses, Path("train.py"))
    # THEN tune plans nothing, and says why in the words profile printed
    assert diagnoses[0].summary.startswith(verdict)
    assert plan.pipelines == ()
    assert one_line(diagnoses[0].summary) in printed_by_profile
    assert any(one_line(diagnoses[0].summary) in note for note in plan.notes)


def with_step_cpu(profile, cpu_per_step: float, steady_s: float):
    """``profile`` with a training step that used ``cpu_per_step`` of CPU on the shared cores."""
    pipeline = profile.pipelines[0]
    steps = pipeline.consumer.steps
    consumer = dataclasses.replace(pipeline.consumer, cpu_s=cpu_per_step * steps,
                                   steady_steps=steps, steady_s=steady_s)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def test_where_the_step_shares_the_cores_profile_recommends_and_tune_plans_the_same_cache():
    # GIVEN a DataLoader whose 2 workers take 184 ms of CPU per batch (mostly a
    # deterministic blur) beside a step of 250 ms of CPU, on the same 2 cores,
    # over two passes of the data (the PyTorch data tutorial's shape, on a CPU)
    profile = with_step_cpu(loader_profile(
        (0.002, 0.0018),
        (("Resize", 0.001, 0.001, False), ("GaussianBlur", 0.020, 0.020, False),
         ("RandomHorizontalFlip", 0.0002, 0.0002, True)),
        num_workers=2, wait_s=6.7, step_s=15.0), cpu_per_step=0.25, steady_s=21.7)
    (diagnosis,) = diagnose_all(profile)
    # THEN the verdict names the step, and says CPU taken off the pipeline still pays
    assert diagnosis.step_shares_cores and not diagnosis.input_bound
    assert "share the 2 usable cores, and the step uses most of them" in diagnosis.summary
    assert "not the bottleneck" not in diagnosis.summary
    printed = one_line(render_summary(profile, (diagnosis,)))
    assert "Bound by the CPU the training step shares with the input pipeline" in printed
    # AND profile recommends the cache after the blur, and tune plans that cache, alone
    (cache,) = [r for r in diagnosis.recommendations if r.title.startswith("Cache")]
    assert cache.stage_id == "transform_1" and "CachedDataset" in cache.new
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    (planned,) = plan.pipelines
    (setting,) = planned.settings
    assert (setting.stage_id, setting.cache) == ("transform_1", "memory")
    assert setting.parallelism is None and setting.prefetch is None
    assert not any("nothing to change" in note for note in plan.notes)


def test_where_the_step_shares_the_cores_tune_adds_no_prefetch_or_calls():
    # GIVEN a tf.data map of 10 ms of CPU on 2 cores with no prefetch at the end, beside
    # a step of 25 ms of CPU (the process used 35 ms a step), and no cache that could pay
    # (one pass)
    profile = with_step_cpu(make_profile(
        stage("source-0", "source", 100, 0.01, line=4),
        stage("map-0", "map", 100, 1.0, parallelism=1, knobs={"parallelism": 1}, line=5),
        wait_s=0.25, step_s=1.5), cpu_per_step=0.035, steady_s=1.75)
    (diagnosis,) = diagnose_all(profile)
    assert diagnosis.step_shares_cores
    # THEN tune plans nothing: a prefetch or more calls would take no CPU off the pipeline
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    assert plan.pipelines == ()
    assert any("no change worth making" in note for note in plan.notes)


def test_a_close_call_gets_no_recommendation_but_a_clear_bottleneck_does():
    (close,) = diagnose_all(one_map_profile(0.95, 0.05))
    assert close.recommendations == ()
    assert "uncertain" in close.summary and "no change" in close.summary
    (clear,) = diagnose_all(one_map_profile(2.0, 1.5))
    assert clear.input_bound and clear.recommendations


def test_the_headline_of_a_close_call_says_so_in_terminal_and_report():
    # GIVEN a step and a map within the noise of each other
    profile = one_map_profile(0.95, 0.05)
    diagnoses = diagnose_all(profile)
    assert diagnoses[0].uncertain
    # THEN neither the terminal nor the report headline claims a side
    printed = render_summary(profile, diagnoses)
    assert "Pipeline pipeline-0: too close to call" in printed
    assert "input-bound" not in printed.splitlines()[0]
    html = render_html(profile, diagnoses)
    assert '<span class="verdict">too close to call</span>' in html
    (clear,) = diagnose_all(one_map_profile(2.0, 1.5))
    assert not clear.uncertain


def test_a_pinned_loaders_workers_edit_is_worded_as_num_workers():
    # GIVEN the plan of a DataLoader built with pin_memory=True: its root is the pin thread
    workers = StageSetting(StageRef("train.py", 9, "workers"), "workers", parallelism=4)
    pinned = PipelinePlan(root=StageRef("train.py", 9, "pin_memory"), settings=(workers,))
    profiled = stage("workers", "workers", 100, 1.0, knobs={"num_workers": 1})
    # WHEN its edit is worded THEN it names the loader's argument, not tf.data's
    assert is_loader(pinned)
    assert [str(e) for e in stage_edits(workers, profiled, is_loader(pinned))] == [
        "num_workers=1 -> num_workers=4"]
