"""Prefetch depth from the variability of producer and consumer (analyzers/prefetch.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from synthetic_profiles import make_profile, stage

from plumber.analyzers.prefetch import (
    MAX_DEPTH,
    MIN_DEPTH,
    STALL_PROBABILITY,
    prefetch_depth,
    prefetch_depth_for,
)
from plumber.records.profile import Profile

MS = 1e-3


def test_a_steady_producer_well_ahead_needs_only_double_buffering():
    depth = prefetch_depth(5 * MS, 0.0, 10 * MS, 0.0)
    assert depth.depth == MIN_DEPTH
    assert depth.stall_probability == 0.0


def test_depth_follows_the_queueing_bound():
    # v = 9.5^2 + 2^2 ms^2, lead 0.5 ms, step 10 ms:
    # B = v ln(100) / (2 x 0.5 ms x 10 ms) = 94.25e-6 x 4.605 / 1e-5 = 43.4 -> 44.
    depth = prefetch_depth(9.5 * MS, 9.5 * MS, 10 * MS, 2 * MS)
    assert depth.depth == 44
    assert depth.stall_probability <= STALL_PROBABILITY
    assert "44 buffered elements" in depth.reason


def test_depth_grows_as_the_producer_lead_shrinks_and_as_rates_vary_more():
    leads = [prefetch_depth(p * MS, 3 * MS, 10 * MS, 1 * MS).depth for p in (5, 8, 9, 9.5)]
    assert leads == sorted(leads) and leads[0] < leads[-1]
    spreads = [prefetch_depth(8 * MS, sd * MS, 10 * MS, 1 * MS).depth for sd in (1, 3, 6)]
    assert spreads == sorted(spreads) and spreads[0] < spreads[-1]


def test_a_producer_slower_than_the_step_gets_no_deep_buffer():
    depth = prefetch_depth(12 * MS, 5 * MS, 10 * MS, 1 * MS)
    assert depth.depth == MIN_DEPTH
    assert depth.stall_probability is None
    assert "not faster" in depth.reason


def test_depth_is_capped_when_the_producer_is_barely_faster():
    depth = prefetch_depth(9.99 * MS, 5 * MS, 10 * MS, 5 * MS)
    assert depth.depth == MAX_DEPTH
    assert f"capped at {MAX_DEPTH}" in depth.reason


def test_memory_budget_is_a_hard_limit_on_depth():
    # 44 elements wanted (see above), 1 MB each, 5 MB of budget: 5.
    depth = prefetch_depth(9.5 * MS, 9.5 * MS, 10 * MS, 2 * MS,
                           bytes_per_element=1e6, memory_budget_bytes=5e6)
    assert depth.depth == 5
    assert "limited to 5 by the memory budget" in depth.reason
    none_fits = prefetch_depth(9.5 * MS, 9.5 * MS, 10 * MS, 2 * MS,
                               bytes_per_element=1e6, memory_budget_bytes=0.5e6)
    assert none_fits.depth == 0
    slow = prefetch_depth(12 * MS, 0.0, 10 * MS, 0.0, bytes_per_element=1e6,
                          memory_budget_bytes=1e6)
    assert slow.depth == 1


def _profile(wait_sd: float | None, step_sd: float | None) -> Profile:
    # 100 steps of 10 ms; the root produces 1 kB per element.
    profile = make_profile(
        stage("source-0", "source", 100, 0.1),
        stage("map-0", "map", 100, 0.5, parallelism=1, line=5, bytes_per_element=1000),
        wait_s=0.2, step_s=1.0,
    )
    (pipeline,) = profile.pipelines
    consumer = dataclasses.replace(pipeline.consumer, wait_sd_s=wait_sd, step_sd_s=step_sd)
    return dataclasses.replace(profile, pipelines=(dataclasses.replace(pipeline,
                                                                       consumer=consumer),))


def test_depth_from_a_profile_uses_the_consumers_spreads_and_the_root_size():
    profile = _profile(wait_sd=9.5 * MS, step_sd=2 * MS)
    (pipeline,) = profile.pipelines
    depth = prefetch_depth_for(pipeline, producer_rate=1 / (9.5 * MS), memory_budget_bytes=None)
    assert depth is not None and depth.depth == 44
    capped = prefetch_depth_for(pipeline, producer_rate=1 / (9.5 * MS),
                                memory_budget_bytes=10_000)
    assert capped is not None and capped.depth == 10


def test_a_profile_without_spreads_gives_no_depth():
    (pipeline,) = _profile(wait_sd=None, step_sd=None).pipelines
    assert prefetch_depth_for(pipeline, producer_rate=200.0, memory_budget_bytes=None) is None


def test_spreads_round_trip_and_older_profiles_without_them_still_load():
    profile = _profile(wait_sd=0.004, step_sd=0.001)
    loaded = Profile.from_dict(json.loads(profile.to_json()))
    assert loaded == profile
    data = json.loads(profile.to_json())
    for pipeline in data["pipelines"]:
        del pipeline["consumer"]["wait_sd_s"], pipeline["consumer"]["step_sd_s"]
    consumer = Profile.from_dict(data).pipelines[0].consumer
    assert consumer.wait_sd_s is None and consumer.step_sd_s is None
    assert math.isclose(consumer.step_s, 1.0)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_no_depth_without_a_producer_rate(rate):
    (pipeline,) = _profile(wait_sd=0.004, step_sd=0.001).pipelines
    assert prefetch_depth_for(pipeline, producer_rate=rate, memory_budget_bytes=None) is None
