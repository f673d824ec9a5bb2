"""Steady windows in the Profile record: they round-trip, and older profiles still load."""

from __future__ import annotations

import dataclasses
import json

from plumber.records.profile import Profile, SteadySpan, TimeSeries
from tests.unit.synthetic_profiles import make_profile, stage

SPANS = (SteadySpan(start_s=1.25, end_s=3.5, steps=40), SteadySpan(4.0, 6.75, 50))


def _profile_with_spans() -> Profile:
    profile = make_profile(stage("map-0", "map", 100, 2.0), wait_s=1.0, step_s=5.0,
                           resources=TimeSeries(t=(0.25, 0.5), cpu_percent=(10.0, 20.0)))
    (pipeline,) = profile.pipelines
    assert pipeline.consumer is not None
    consumer = dataclasses.replace(pipeline.consumer, steady_steps=90, steady_s=5.0,
                                   steady_spans=SPANS)
    return dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, consumer=consumer),)
    )


def test_steady_spans_round_trip_through_json():
    loaded = Profile.from_dict(json.loads(_profile_with_spans().to_json()))
    consumer = loaded.pipelines[0].consumer
    assert consumer is not None
    assert consumer.steady_spans == SPANS
    assert json.loads(_profile_with_spans().to_json())["pipelines"][0]["consumer"][
        "steady_spans"
    ][0] == {"start_s": 1.25, "end_s": 3.5, "steps": 40}


def test_a_profile_written_before_spans_were_recorded_loads_without_them():
    data = json.loads(_profile_with_spans().to_json())
    del data["pipelines"][0]["consumer"]["steady_spans"]
    consumer = Profile.from_dict(data).pipelines[0].consumer
    assert consumer is not None
    assert consumer.steady_spans == ()
    assert consumer.steady_s == 5.0
