"""Comparing the hosts of one data-parallel job (analyzers.hosts, analyzers.hostdiff).

GIVEN synthetic profiles of hosts that differ in one planted way, THEN the
slowest host is named and the planted difference explains it; profiles of
different jobs are refused.
"""

from __future__ import annotations

import dataclasses

import pytest
from host_profiles import host_profile
from synthetic_profiles import loader_profile

from plumber.analyzers.hosts import DifferentJobsError, compare_hosts, names_from_files
from plumber.records.profile import SourceLocation, TimeSeries


def only_pipeline(comparison):
    (pipeline,) = comparison.pipelines
    return pipeline


def test_a_host_with_a_slower_map_is_named_slowest_and_the_map_explains_it():
    pipeline = only_pipeline(compare_hosts(["host0", "host1"],
                                           [host_profile(0.004), host_profile(0.008)]))
    assert pipeline.slowest_host == "host1"
    assert pipeline.basis == "rate"
    assert pipeline.lag == pytest.approx(1 - (100 / 5) / (100 / 3))  # 20/s against 33.3/s
    first = pipeline.differences[0]
    assert (first.stage_id, first.quantity) == ("map-0", "service time per element")
    assert first.values == pytest.approx((0.004, 0.008))
    assert first.worse_by == pytest.approx(1.0)
    assert "host1 is the slowest host" in pipeline.summary
    assert "holds every host at its pace" in pipeline.summary
    assert "map-0 (map at train.py:11)" in pipeline.summary
    assert "8 ms on host1 against 4 ms on host0" in first.sentence


def test_the_slowest_host_is_named_whatever_its_position():
    pipeline = only_pipeline(compare_hosts(
        ["a", "b", "c"], [host_profile(0.0041), host_profile(0.012), host_profile(0.004)]))
    assert pipeline.slowest_host == "b"
    assert "the other hosts (median)" in pipeline.differences[0].sentence


def test_fewer_usable_cores_on_the_slowest_host_are_a_difference():
    slow = host_profile(0.008, cores=1.0)
    pipeline = only_pipeline(compare_hosts(["big", "small"], [host_profile(0.004), slow]))
    machine = [d for d in pipeline.differences if d.subject == "machine"]
    assert [(d.quantity, d.slowest, d.others) for d in machine] == [("usable cores", 1.0, 4.0)]
    assert "1 core on small against 4 cores on big" in machine[0].sentence


def test_a_difference_that_favours_the_slowest_host_does_not_explain_it():
    slow = host_profile(0.008, cores=8.0)
    pipeline = only_pipeline(compare_hosts(["fast", "slow"], [host_profile(0.004), slow]))
    assert all(d.subject != "machine" for d in pipeline.differences)


def test_less_parallelism_on_the_slowest_host_is_a_difference():
    pipeline = only_pipeline(compare_hosts(
        ["wide", "narrow"], [host_profile(0.004, parallelism=4),
                             host_profile(0.004, parallelism=1)]))
    assert pipeline.slowest_host == "narrow"
    quantities = {(d.stage_id, d.quantity) for d in pipeline.differences}
    assert ("map-0", "parallelism") in quantities
    assert ("map-0", "service time per element") not in quantities


def test_a_minor_stage_slower_on_the_slowest_host_is_left_out_as_noise():
    slow = host_profile(0.008, batch_s=0.00002)
    fast = host_profile(0.004, batch_s=0.00001)
    pipeline = only_pipeline(compare_hosts(["fast", "slow"], [fast, slow]))
    assert all(d.stage_id != "batch-0" for d in pipeline.differences)


def test_a_slower_training_step_is_the_difference_of_a_consumer_bound_host():
    fast = host_profile(0.004, step_s=1.0, wait_s=0.1)
    slow = host_profile(0.004, step_s=3.0, wait_s=0.1)
    pipeline = only_pipeline(compare_hosts(["fast", "slow"], [fast, slow]))
    assert pipeline.slowest_host == "slow"
    assert pipeline.differences[0].subject == "training step"
    assert pipeline.differences[0].values == pytest.approx((0.01, 0.03))
    assert "the training step, not the input pipeline, is the limit" in pipeline.summary


def test_hosts_in_lockstep_name_the_one_that_waited_longest_for_its_input():
    # Synchronous training: both delivered 100 steps in 10 s; host1's input pipeline was
    # slow (it waited 6 s for data), host0 waited for host1 in the all-reduce (its step).
    host0 = host_profile(0.004, step_s=9.0, wait_s=1.0)
    host1 = host_profile(0.012, step_s=4.0, wait_s=6.0)
    pipeline = only_pipeline(compare_hosts(["host0", "host1"], [host0, host1]))
    assert pipeline.basis == "wait"
    assert pipeline.slowest_host == "host1"
    assert pipeline.differences[0].stage_id == "map-0"
    assert "host1 waited longest for its input (60% of its loop)" in pipeline.summary


def test_hosts_at_one_pace_with_no_one_waiting_more_have_no_straggler():
    pipeline = only_pipeline(compare_hosts(["a", "b"], [host_profile(), host_profile()]))
    assert pipeline.basis == "even"
    assert pipeline.differences == ()
    assert "no host is a straggler" in pipeline.summary
    assert "Nothing recorded differs enough" in pipeline.summary


def test_many_hosts_are_summarised_by_the_slowest_and_the_others_median():
    profiles = [host_profile(0.004) for _ in range(7)] + [host_profile(0.01)]
    pipeline = only_pipeline(compare_hosts([f"h{i}" for i in range(8)], profiles))
    assert pipeline.slowest_host == "h7"
    assert "h7 16.7/s, the other 7 hosts' median 33.3/s" in pipeline.summary


def test_profiles_of_another_framework_are_refused():
    with pytest.raises(DifferentJobsError, match="not profiles of one job.*framework torch"):
        compare_hosts(["a", "b"], [host_profile(), host_profile(framework="torch")])


def test_profiles_of_other_pipelines_are_refused():
    other = host_profile()
    (pipeline,) = other.pipelines
    stages = [dataclasses.replace(s, kind="filter") if s.id == "map-0" else s
              for s in pipeline.stages]
    other = dataclasses.replace(
        other, pipelines=(dataclasses.replace(pipeline, stages=tuple(stages)),))
    with pytest.raises(DifferentJobsError, match="map-0 filter at train.py:11 against "
                                                 "map-0 map at train.py:11"):
        compare_hosts(["a", "b"], [host_profile(), other])


def test_stages_built_at_other_lines_are_another_job_but_another_folder_is_not():
    moved = host_profile()
    (pipeline,) = moved.pipelines

    def rebuilt(folder: str, shift: int):
        stages = tuple(
            dataclasses.replace(s, source=SourceLocation(f"{folder}/train.py",
                                                         s.source.line + shift))
            for s in pipeline.stages)
        return dataclasses.replace(moved, pipelines=(dataclasses.replace(pipeline,
                                                                         stages=stages),))

    compare_hosts(["a", "b"], [host_profile(), rebuilt("/srv/job", 0)])
    with pytest.raises(DifferentJobsError, match="other stages"):
        compare_hosts(["a", "b"], [host_profile(), rebuilt("/srv/job", 5)])


def test_a_host_without_pipelines_is_refused():
    empty = dataclasses.replace(host_profile(), pipelines=())
    with pytest.raises(DifferentJobsError, match="no input pipeline was observed on b"):
        compare_hosts(["a", "b"], [host_profile(), empty])


def test_one_profile_or_repeated_names_are_refused():
    with pytest.raises(ValueError, match="at least two"):
        compare_hosts(["a"], [host_profile()])
    with pytest.raises(ValueError, match="repeat"):
        compare_hosts(["a", "a"], [host_profile(), host_profile()])


def test_hosts_are_named_by_their_files_and_by_their_folders_when_files_share_a_name():
    assert names_from_files(["runs/host0.json", "runs/host1.json"]) == ("host0", "host1")
    assert names_from_files(["runs/host0/profile.json", "runs/host1/profile.json"]) == (
        "host0", "host1")
    assert names_from_files(["runs/profile.json", "runs/host1/profile.json"]) == (
        "profile.json", "host1/profile.json")


def test_a_host_whose_cores_other_processes_kept_busy_is_explained_by_them():
    def sampled(machine_percent: float, own_percent: float):
        profile = host_profile(0.008 if machine_percent > 50 else 0.004)
        return dataclasses.replace(profile, resources=TimeSeries(
            t=(0.0, 1.0, 2.0), cpu_percent=(machine_percent,) * 3,
            process_cpu_percent=(own_percent,) * 3))

    # 4 logical cores: the run itself keeps 2 busy (200%) on both hosts; on the noisy
    # host the machine is 95% busy, so other processes held 45% of its cores.
    pipeline = only_pipeline(compare_hosts(["quiet", "noisy"],
                                           [sampled(50.0, 200.0), sampled(95.0, 200.0)]))
    (busy,) = [d for d in pipeline.differences if d.subject == "machine"]
    assert busy.quantity == "cores busy with other processes"
    assert busy.values == pytest.approx((0.0, 0.45))
    assert "45% on noisy against 0% on quiet" in busy.sentence


def test_the_transform_a_bottleneck_worker_pool_runs_slower_comes_first():
    def loader(blur_s: float, wait_s: float):
        return loader_profile((0.01, 0.01), (("GaussianBlur", blur_s, blur_s, False),),
                              num_workers=2, wait_s=wait_s, step_s=1.0)

    pipeline = only_pipeline(compare_hosts(["a", "b"], [loader(0.02, 3.0), loader(0.06, 9.0)]))
    assert pipeline.slowest_host == "b"
    first = pipeline.differences[0]
    assert (first.stage_id, first.quantity) == ("transform_0", "service time per element")
    assert first.values == pytest.approx((0.02, 0.06))
