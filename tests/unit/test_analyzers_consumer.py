"""The training step's CPU is charged to the CPU bound next to the pipeline's."""

from __future__ import annotations

import dataclasses

import pytest

from plumber.analyzers.consumer import consumer_cpu_per_root, in_process_cpu, in_process_excess
from plumber.analyzers.diagnose import diagnose
from plumber.reports.terminal import render_summary
from tests.unit.synthetic_profiles import loader_profile, make_profile, stage


def _with_consumer_cpu(profile, cpu_s, steady_steps):
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, cpu_s=cpu_s, steady_steps=steady_steps,
                                   steady_s=1.0)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def _cpu_bound_profile(step_s=0.5):
    # 100 batches, a map of 10 ms CPU per batch, parallelism 2 on 2 cores.
    return make_profile(
        stage("source-0", "source", 3200, 0.01),
        stage("map-0", "map", 3200, 1.0, parallelism=2),
        stage("batch-0", "batch", 100, 0.01),
        wait_s=0.5, step_s=step_s, steps=100,
    )


def test_consumer_cpu_is_what_the_process_used_beyond_its_stages():
    # GIVEN a process that used 3.02 s of CPU over 100 steady steps, of which the
    # stages account for 1.02 s over the run's 100 root elements
    # and a 15 ms step
    profile = _with_consumer_cpu(_cpu_bound_profile(1.5), cpu_s=3.02, steady_steps=100)
    pipeline = profile.pipelines[0]
    # THEN the training step took 20 ms of CPU per root element
    assert in_process_cpu(pipeline) == pytest.approx(1.02)
    assert consumer_cpu_per_root(pipeline, 100, 2.0) == pytest.approx(0.02)


def test_the_step_is_charged_no_more_than_every_core_for_as_long_as_it_lasts():
    # GIVEN the same process CPU but a 5 ms step: 2 cores x 5 ms is the most it can use;
    # the rest ran the pipeline on threads its stage timers do not see
    profile = _with_consumer_cpu(_cpu_bound_profile(0.5), cpu_s=3.02, steady_steps=100)
    assert consumer_cpu_per_root(profile.pipelines[0], 100, 2.0) == pytest.approx(0.01)


def test_the_cpu_bound_charges_the_training_step_on_the_same_cores():
    plain = diagnose(_cpu_bound_profile(1.5))
    shared = diagnose(_with_consumer_cpu(_cpu_bound_profile(1.5), cpu_s=3.02, steady_steps=100))
    cpu = next(b for b in plain.bounds if b.kind == "cpu")
    cpu_shared = next(b for b in shared.bounds if b.kind == "cpu")
    # 2 cores / 10.2 ms alone; 2 cores / (10.2 + 20) ms with the step's CPU
    assert cpu.rate == pytest.approx(2 / 0.0102)
    assert cpu_shared.rate == pytest.approx(2 / 0.0302)
    assert "training step" in cpu_shared.detail
    assert "training step" not in cpu.detail


def test_a_step_whose_cpu_cannot_be_told_from_the_stages_is_left_out_and_said_so():
    # GIVEN a process that used 0.95 s over 100 steady steps, where its stages claim
    # 1.02 s over 100 root elements (within the tolerance: no scaling)
    profile = _with_consumer_cpu(_cpu_bound_profile(1.5), cpu_s=0.95, steady_steps=100)
    diagnosis = diagnose(profile)
    cpu = next(b for b in diagnosis.bounds if b.kind == "cpu")
    # THEN nothing is charged for the step, and the verdict says why
    assert "training step" not in cpu.detail
    assert any("could not be told from theirs" in w for w in diagnosis.warnings)
    # while a step the process's CPU does show is charged without that warning
    shared = diagnose(_with_consumer_cpu(_cpu_bound_profile(1.5), cpu_s=3.02, steady_steps=100))
    assert not any("could not be told from theirs" in w for w in shared.warnings)


def test_no_charge_when_the_consumer_cpu_was_not_measured():
    assert consumer_cpu_per_root(_cpu_bound_profile().pipelines[0], 100, 2.0) is None


def test_no_charge_when_an_in_process_stage_has_no_cpu_time():
    profile = make_profile(
        stage("source-0", "source", 3200, 0.5, cpu=None),
        stage("batch-0", "batch", 100, 0.01),
        wait_s=0.5, step_s=0.5,
    )
    profile = _with_consumer_cpu(profile, cpu_s=3.0, steady_steps=100)
    assert consumer_cpu_per_root(profile.pipelines[0], 100, 2.0) is None


def test_worker_processes_are_not_taken_off_the_main_process_cpu():
    # GIVEN a DataLoader whose chain ran in 2 worker processes, and a main process
    # that used 1 s of CPU over 100 steady steps
    profile = loader_profile((0.004, 0.004), (("Resize", 0.002, 0.002, False),),
                             num_workers=2, wait_s=0.5, step_s=0.5)
    profile = _with_consumer_cpu(profile, cpu_s=1.0, steady_steps=100)
    pipeline = profile.pipelines[0]
    # THEN none of the workers' CPU is taken off: the main process ran no stage
    assert in_process_cpu(pipeline) == 0.0
    assert consumer_cpu_per_root(pipeline, 100, 2.0) == pytest.approx(0.01)


def test_a_pool_without_workers_ran_in_the_main_process():
    # GIVEN num_workers=0: fetch and transforms ran in the main process
    profile = loader_profile((0.004, 0.004), (("Resize", 0.002, 0.002, False),),
                             num_workers=0, wait_s=0.5, step_s=1.0)
    profile = _with_consumer_cpu(profile, cpu_s=6.0, steady_steps=100)
    pipeline = profile.pipelines[0]
    # THEN the pool's CPU (8 samples x 6 ms + collate, per batch) is taken off
    stages = in_process_cpu(pipeline)
    assert stages == pytest.approx(100 * (8 * 0.006 + 0.01 * 0.004 * 8))
    assert consumer_cpu_per_root(pipeline, 100, 2.0) == pytest.approx(0.06 - stages / 100)


def _with_window(profile, cpu_s, steady_s):
    """``profile`` with a fast training step (500/s) and the given steady window."""
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, wait_s=0.8, step_s=0.2, cpu_s=cpu_s,
                                   steady_steps=100, steady_s=steady_s)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def test_a_cpu_verdict_states_the_cores_measured_busy_over_the_steady_window():
    # GIVEN a CPU-bound pipeline whose process used 1.9 cores over its steady window
    diagnosis = diagnose(_with_window(_cpu_bound_profile(), cpu_s=1.9, steady_s=1.0))
    assert diagnosis.bottleneck_kind == "cpu"
    assert "kept 1.9 of 2 usable cores busy" in diagnosis.summary
    assert "upper bounds" not in diagnosis.summary


def test_a_cpu_verdict_never_claims_busy_cores_the_measurement_did_not_see():
    # GIVEN the same model, but the process kept only one core busy while it iterated
    diagnosis = diagnose(_with_window(_cpu_bound_profile(), cpu_s=1.0, steady_s=1.0))
    assert diagnosis.bottleneck_kind == "cpu"
    # THEN the verdict says the measurement wins rather than "all cores busy"
    assert "kept only 1.0 of 2 usable cores busy" in diagnosis.summary
    assert "upper bounds" in diagnosis.summary
    assert "keep all" not in diagnosis.summary


def test_a_cpu_verdict_names_the_training_steps_share():
    # 3 ms of CPU per step beyond the stages, within what a 2 ms step on 2 cores can use
    diagnosis = diagnose(_with_window(_cpu_bound_profile(), cpu_s=1.32, steady_s=1.6))
    assert "and the training step 3 ms on the same cores" in diagnosis.summary


def test_the_observed_rate_is_the_steady_one_and_start_up_is_reported_apart():
    # GIVEN 100 steps over 1.0 s of iteration, of which the steady window held 99 in 0.5 s
    profile = _cpu_bound_profile()
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, steady_steps=99, steady_s=0.5)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer, duration_s=1.0),)
    )
    diagnosis = diagnose(profile)
    # THEN the model is compared with 198/s, and 0.5 s of start-up is said apart
    assert diagnosis.observed_rate == pytest.approx(198.0)
    assert diagnosis.startup_s == pytest.approx(0.5)
    assert "after 0.5 s of start-up" in render_summary(profile, (diagnosis,), None, None)


def test_the_report_publishes_the_models_error_for_the_pipeline_as_it_ran():
    from plumber.reports.html import render_html

    profile = _cpu_bound_profile()
    (diagnosis,) = (diagnose(profile),)
    error = abs(diagnosis.predicted_rate - diagnosis.observed_rate) / diagnosis.observed_rate
    assert diagnosis.prediction_error == pytest.approx(error)
    assert f"(prediction error {error:.0%})" in render_html(profile, (diagnosis,))


@pytest.mark.parametrize(("steps", "seconds", "short"), [(5, 3.0, True), (99, 0.5, True),
                                                         (99, 3.0, False)])
def test_a_run_too_short_for_a_steady_state_says_so(steps, seconds, short):
    profile = _cpu_bound_profile()
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, steady_steps=steps, steady_s=seconds)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )
    warned = any("too short to measure a steady state" in w for w in diagnose(profile).warnings)
    assert warned is short


def test_a_step_that_takes_most_of_the_shared_cores_is_the_bottleneck_not_the_pipeline():
    # GIVEN a 10.2 ms pipeline and a 25 ms step of CPU per batch on the same 2 cores
    # (the step lasts 15 ms, so it can use up to 30 ms of CPU)
    profile = _with_consumer_cpu(_cpu_bound_profile(1.5), cpu_s=3.52, steady_steps=100)
    diagnosis = diagnose(profile)
    # THEN the shared cores bind, and the step, which takes most of them, is blamed
    assert diagnosis.bottleneck.kind == "cpu"
    assert not diagnosis.input_bound
    assert diagnosis.bottleneck_kind == "consumer"
    assert diagnosis.step_shares_cores
    assert "the step uses most of them: it takes 25 ms of CPU" in diagnosis.summary
    assert diagnosis.recommendations == ()


def test_a_run_that_never_got_past_its_start_up_is_not_checked_against_the_model():
    # GIVEN iterators whose steady windows held no step (every batch came in the start-up burst)
    profile = _cpu_bound_profile()
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, steady_steps=0, steady_s=0.0)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )
    diagnosis = diagnose(profile)
    # THEN no prediction error is published, and the report says why
    assert not diagnosis.past_startup
    assert diagnosis.prediction_error is None
    assert any("never got past its start-up" in w for w in diagnosis.warnings)
    assert not any("apart" in w and "observed" in w for w in diagnosis.warnings)


def test_the_step_bound_uses_the_median_step_where_it_was_timed():
    from plumber.analyzers.observed import consumer_rate

    # GIVEN 100 steps of 2 ms and one of 300 ms (the first call of a tf.function traces it)
    profile = _cpu_bound_profile(step_s=0.5)
    pipeline = profile.pipelines[0]
    assert consumer_rate(pipeline) == pytest.approx(200.0)
    timed = dataclasses.replace(pipeline.consumer, step_median_s=0.002)
    # THEN the step alone allows 500/s, not the mean's 200/s
    assert consumer_rate(dataclasses.replace(pipeline, consumer=timed)) == pytest.approx(500.0)


def _one_call_map_profile(process_cpu_s):
    # 100 batches at 18/s over 5.5 s; a map of parallelism 1 on 2 cores whose probe
    # claims 75 ms of CPU per batch, though TF recorded only 50 ms of its wall time
    # (its while_loop's ops ran on threads TF does not time), and a prefetch whose
    # probe charged it 17 ms of read-ahead
    profile = make_profile(
        stage("source-0", "source", 1600, 0.01),
        stage("map-0", "map", 1600, 5.0, cpu=7.5, parallelism=1),
        stage("batch-0", "batch", 100, 0.0),
        stage("prefetch-0", "prefetch", 100, 0.01, cpu=1.7),
        wait_s=5.4, step_s=0.1,
    )
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, cpu_s=process_cpu_s, steady_steps=100,
                                   steady_s=5.5)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def test_stages_claiming_more_cpu_than_their_process_used_are_scaled_to_the_measurement():
    # GIVEN a process that used one core over the window: 55 ms per batch,
    # where its stages claim 92 ms
    profile = _one_call_map_profile(process_cpu_s=5.5)
    assert in_process_excess(profile.pipelines[0], 100) == pytest.approx(9.21 / 5.5)
    diagnosis = diagnose(profile)
    # THEN the measurement wins: the stages' CPU is capped at 1.25x the process's
    # (what a short window's start-up can explain), one core stays idle, and the map
    # is named as held back by its parallelism (not as CPU-bound, which the stages'
    # own figures came within 10% of claiming)
    demand = sum(a.cpu_demand_s for a in diagnosis.stages if a.pool is None)
    assert demand == pytest.approx(1.25 * 0.055)
    assert diagnosis.bottleneck_kind == "parallelism"
    assert any("the process's measurement wins" in w for w in diagnosis.warnings)
    (more,) = [w for w in diagnosis.what_ifs if w.knob == "parallelism"]
    assert more.speedup > 1.5


def test_stages_within_the_tolerance_of_their_process_keep_their_own_cpu():
    # GIVEN a process whose window counts a little less than its stages (buffers
    # filled before it began)
    profile = _one_call_map_profile(process_cpu_s=8.0)
    assert in_process_excess(profile.pipelines[0], 100) is None
    diagnosis = diagnose(profile)
    demand = sum(a.cpu_demand_s for a in diagnosis.stages if a.pool is None)
    assert demand == pytest.approx(0.0921)
    assert not any("the process's measurement wins" in w for w in diagnosis.warnings)


def test_a_claim_just_above_the_tolerance_changes_the_model_just_as_little():
    # GIVEN the stages claim 1.251x and 1.249x what the process used
    below = diagnose(_one_call_map_profile(process_cpu_s=9.21 / 1.249))
    above = diagnose(_one_call_map_profile(process_cpu_s=9.21 / 1.251))
    # THEN the CPU bounds are within a fraction of a percent of each other
    cpu_below, cpu_above = (next(b for b in d.bounds if b.kind == "cpu") for d in (below, above))
    assert cpu_above.rate == pytest.approx(cpu_below.rate, rel=0.005)


def _loader_beside_a_main_process_stage(process_cpu_s):
    # A DataLoader with 2 workers, and a stage after it in the main process that
    # claims 5 ms of CPU per batch
    profile = loader_profile((0.004, 0.004), (("Resize", 0.002, 0.002, False),),
                             num_workers=2, wait_s=0.5, step_s=0.5)
    pipeline = profile.pipelines[0]
    pin = dataclasses.replace(stage("pin_memory-0", "pin_memory", 100, 0.5),
                              inputs=("workers",))
    pipeline = dataclasses.replace(pipeline, root=pin.id, stages=(*pipeline.stages, pin))
    return _with_consumer_cpu(dataclasses.replace(profile, pipelines=(pipeline,)),
                              cpu_s=process_cpu_s, steady_steps=100)


def test_worker_processes_are_never_scaled_to_the_main_process():
    # GIVEN the main process used 2 ms per batch where its stage claims 5 ms
    scaled = diagnose(_loader_beside_a_main_process_stage(process_cpu_s=0.2))
    plain = diagnose(_loader_beside_a_main_process_stage(process_cpu_s=1.0))
    assert in_process_excess(_loader_beside_a_main_process_stage(0.2).pipelines[0], 100) == \
        pytest.approx(2.5)
    # THEN only the main process's stage is scaled; the pool and its members keep theirs
    for before, after in zip(plain.stages, scaled.stages, strict=True):
        if before.stage_id == "pin_memory-0":
            assert after.cpu_demand_s == pytest.approx(0.005 * 1.25 / 2.5)
        else:
            assert after.cpu_demand_s == pytest.approx(before.cpu_demand_s), before.stage_id


def _step_sharing_cores_with_one_call_map(step_cpu_s, map_wall_s=1.0):
    # A one-call map (1.0 s over 100 batches: 100/s) beside a step of `step_cpu_s` CPU
    # per batch on the same 2 cores; the step lasts 7.5 ms (133/s alone)
    profile = make_profile(
        stage("source-0", "source", 3200, 0.01),
        stage("map-0", "map", 3200, map_wall_s, parallelism=1),
        stage("batch-0", "batch", 100, 0.01),
        wait_s=0.5, step_s=0.75, steps=100,
    )
    stages_cpu = 0.02 + map_wall_s
    return _with_consumer_cpu(profile, cpu_s=stages_cpu + 100 * step_cpu_s, steady_steps=100)


def test_a_step_on_shared_cores_within_the_noise_of_a_stage_is_too_close_to_call():
    # GIVEN the shared cores allow 2 / (10.2 + 11) ms = 94/s, most of it the step's,
    # and the map 100/s: 6% apart
    diagnosis = diagnose(_step_sharing_cores_with_one_call_map(0.011))
    # THEN neither side is claimed and nothing is advised
    assert diagnosis.uncertain
    assert diagnosis.summary.startswith(
        "Too close to call: the training step, on the cores it shares with the pipeline, "
        "allows about 94")
    assert "map-0 about 100" in diagnosis.summary
    assert diagnosis.recommendations == ()


def test_a_step_on_shared_cores_well_below_a_stage_is_the_bottleneck():
    # GIVEN the step takes 15 ms of the shared CPU: 2 / 25.2 ms = 79/s against the map's 100/s
    diagnosis = diagnose(_step_sharing_cores_with_one_call_map(0.015))
    assert not diagnosis.uncertain
    assert diagnosis.bottleneck_kind == "consumer" and not diagnosis.input_bound


def test_a_shared_cpu_bound_close_to_the_steps_own_is_no_close_call():
    # GIVEN a 3 ms map and a step of 12 ms CPU per batch lasting 7.5 ms: the shared cores
    # allow 2 / 15.2 ms = 132/s, most of it the step's, and the step alone 133/s
    diagnosis = diagnose(_step_sharing_cores_with_one_call_map(0.012, map_wall_s=0.3))
    # THEN both are the step's side: the step is named, with no doubt between them
    assert not diagnosis.uncertain
    assert diagnosis.bottleneck_kind == "consumer" and not diagnosis.input_bound


def test_a_step_bound_loop_that_waited_in_its_steady_window_is_not_blamed_on_start_up():
    # GIVEN a map that keeps up with the step, and a loop that waited half its steady window
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 0.5, parallelism=1),
        wait_s=1.0, step_s=1.0,
    )
    pipeline = profile.pipelines[0]
    timed = dataclasses.replace(pipeline.consumer, steady_steps=99, steady_s=1.6,
                                steady_wait_s=0.8)
    untimed = dataclasses.replace(timed, steady_wait_s=None)
    no_window = dataclasses.replace(timed, steady_steps=0, steady_s=0.0, steady_wait_s=0.0)
    warned = {}
    for name, consumer in (("timed", timed), ("untimed", untimed), ("no window", no_window)):
        changed = dataclasses.replace(
            profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),))
        warned[name] = " ".join(w for w in diagnose(changed).warnings if "should keep up" in w)
    # THEN start-up is named as a cause only where the stall includes it
    assert "50% of its time after start-up" in warned["timed"]
    assert "start-up (filling buffers)" not in warned["timed"]
    assert "start-up (filling buffers)" in warned["untimed"]
    assert "start-up (filling buffers)" in warned["no window"]


def _waited_5_percent(profile, cpu_s):
    """``profile`` whose process used ``cpu_s`` over a 1 s steady window of 100 steps, of
    which its loop waited 0.05 s for data."""
    profile = _with_consumer_cpu(profile, cpu_s=cpu_s, steady_steps=100)
    pipeline = profile.pipelines[0]
    consumer = dataclasses.replace(pipeline.consumer, steady_wait_s=0.05)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),))


def test_a_step_short_of_cores_it_shares_is_not_overruled_by_a_loop_that_hardly_waited():
    # GIVEN the step and the pipeline sharing 2 cores, the step taking most of them, and a
    # loop that waited 5% of its steady window: the step ran slow for want of cores
    diagnosis = diagnose(_waited_5_percent(_cpu_bound_profile(1.5), cpu_s=3.52))
    # THEN the verdict stays the shared cores', which profile and tune both act on
    assert diagnosis.stall_share == pytest.approx(0.05)
    assert diagnosis.step_shares_cores
    assert not any("taken as the limit" in w for w in diagnosis.warnings)


def test_a_pipeline_taking_most_of_the_cores_it_shares_is_blamed_though_the_loop_hardly_waited():
    # GIVEN a 10.2 ms pipeline and a 5 ms step of CPU per batch on the same 2 cores
    # (the pipeline takes most), and a loop that waited 5% of its steady window: the
    # step ran slow for want of the cores the pipeline took
    diagnosis = diagnose(_waited_5_percent(_cpu_bound_profile(0.6), cpu_s=1.52))
    # THEN the shared cores bind and the pipeline is blamed, not the step
    assert diagnosis.bottleneck.kind == "cpu" and diagnosis.bottleneck.stage_id is None
    assert diagnosis.input_bound and not diagnosis.step_shares_cores
    assert not any("taken as the limit" in w for w in diagnosis.warnings)


def test_a_close_call_on_the_shared_cores_is_not_settled_by_a_loop_that_hardly_waited():
    # GIVEN the pipeline taking most of the 2 cores it shares with the step, their bound
    # within the noise of the step's own, and a loop that waited 5% of its steady window
    diagnosis = diagnose(_waited_5_percent(_cpu_bound_profile(0.75), cpu_s=1.52))
    cpu = next(b for b in diagnosis.bounds if b.name == "CPU")
    step = next(b for b in diagnosis.bounds if b.kind == "consumer")
    assert cpu.rate < step.rate < 1.1 * cpu.rate
    # THEN the verdict says it is too close to call, as judge no longer takes the step
    assert diagnosis.uncertain and diagnosis.recommendations == ()
