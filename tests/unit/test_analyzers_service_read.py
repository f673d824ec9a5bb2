"""A pipeline that reads from a tf.data service: the read binds, nothing is planned around it.

The stages the script sent to the service are in the profile below the read,
unmeasured (they ran on the service's workers); the read itself is a source
with the service's address as its knob, waiting on the workers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from plumber.analyzers import offload
from plumber.analyzers.diagnose import diagnose, diagnose_all, scene
from plumber.records.profile import IteratorPass, Stage
from plumber.tuner.derive import derive_plan
from tests.unit.synthetic_profiles import make_profile, stage

ADDRESS = "grpc://localhost:5000"


def remote(sid: str, kind: str, line: int) -> Stage:
    sent = stage(sid, kind, 0, 0.0, line=line)
    return dataclasses.replace(sent, stats=None, unmeasured_reason=(
        f"ran on the tf.data service's workers ({ADDRESS}), not in this process"))


def service_bound():
    """100 batches a pass, 2 passes; the read waits 40 ms a batch, the step takes 10 ms."""
    read = stage("source-1", "source", 200, 8.0, None, op="DataServiceV4", line=14,
                 knobs={"service": ADDRESS, "random": True,
                        "processing_mode": "distributed_epoch"})
    uncompress = dataclasses.replace(stage("tf-map-above-source-1", "map", 200, 0.1,
                                           parallelism=2), written=False)
    return make_profile(
        remote("source-0", "source", 10), remote("map-0", "map", 11),
        read, uncompress, stage("prefetch-0", "prefetch", 200, 0.02, 0.0, line=16),
        wait_s=7.8, step_s=2.0, steps=200,
        passes=(IteratorPass(100, True), IteratorPass(100, True)),
    )


def test_the_service_read_is_named_as_the_bottleneck_with_its_address():
    profile = service_bound()
    diagnosis = diagnose(profile, profile.pipelines[0])
    assert diagnosis.bottleneck_kind == "service"
    assert diagnosis.bottleneck_stage == "source-1"
    assert ADDRESS in diagnosis.summary
    assert "how many is not predicted" in diagnosis.summary


def test_nothing_is_planned_at_the_read_or_the_stages_sent_to_the_service():
    profile = service_bound()
    plan = derive_plan(profile, diagnose_all(profile), Path("train.py"))
    settings = [s for p in plan.pipelines for s in p.settings]
    assert not any(s.stage_id in {"source-0", "map-0", "source-1"} for s in settings)
    assert not any(s.cache for s in settings)


def test_a_cache_after_the_read_is_refused_for_what_the_service_makes_each_epoch():
    profile = service_bound()
    what_ifs = diagnose(profile, profile.pipelines[0]).what_ifs
    caches = [w for w in what_ifs if w.knob == "cache"]
    assert caches and not any(w.feasible for w in caches)
    assert all("reads from a tf.data service" in w.reason for w in caches)


def test_a_read_from_a_service_is_never_cut_again():
    read = service_bound().pipelines[0].stage("source-1")
    assert "already reads from the tf.data service" in offload.unmovable(read)
    profile = service_bound()
    assert offload.offload(scene(profile, profile.pipelines[0])) is None
