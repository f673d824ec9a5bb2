"""tune's measuring runs take the plan into a fresh process of their own.

GIVEN a plan raising the planted map's parallelism, WHEN tune's measuring
run profiles the script with it (plumber/tuner/freshrun.py), THEN the map
ran with the planned setting, and without the plan it ran as written. (That
the run is a process of its own: tests/unit/test_freshrun.py.)
"""

from __future__ import annotations

import pytest
from conftest import PIPELINES

from plumber.capture.session import SessionOptions
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting
from plumber.tuner.freshrun import fresh_profile

pytestmark = pytest.mark.slow

SCRIPT = PIPELINES / "expensive_map.py"
MAP_LINE = next(i for i, line in enumerate(SCRIPT.read_text().splitlines(), 1)
                if "dataset.map(" in line)


def map_parallelism(plan: Plan | None) -> int | None:
    profile = fresh_profile(SCRIPT, ["--elements", "96"], SessionOptions(net_probe_s=0.0),
                               plan)
    assert profile.run.exit_status == 0
    [pipeline] = profile.pipelines
    [planted] = [s for s in pipeline.stages if s.kind == "map" and s.source is not None]
    return planted.knobs.get("parallelism")


def test_the_plan_is_in_force_in_the_fresh_measuring_run():
    plan = Plan(script=str(SCRIPT), pipelines=(PipelinePlan(
        StageRef(SCRIPT.name, MAP_LINE + 2, "prefetch"),
        (StageSetting(StageRef(SCRIPT.name, MAP_LINE, "map"), "map-0", parallelism=2),)),))
    assert map_parallelism(plan) == 2
    assert map_parallelism(None) == 1
