"""A sample cache is not free: what storing and reading back a sample costs is measured in
the workers and charged to the pool by the cache what-if.

The torchvision reference's plan cached decoded 800x800 images after fetch and
was predicted at 38/s once full (21.3/s over its two epochs) from the decode's
82 ms per batch saved; each sample read back cost 2-4 ms where decoding it
again cost 6.3 ms, and the plan measured slower than the script as written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from plumber.analyzers.diagnose import diagnose, scene
from plumber.records.profile import Profile
from plumber.torch.cache import SHARED_MEMORY
from plumber.torch.cachecost import sample_cache_cost
from plumber.torch.workerside import FETCH, StageRecorder, WorkerSnapshot
from plumber.tuner.derive import derive_plan
from tests.unit.synthetic_profiles import loader_profile

RESIZE = ("Resize", 0.001, 0.001, False)
BLUR = ("GaussianBlur", 0.020, 0.020, False)
FLIP = ("RandomHorizontalFlip", 0.0002, 0.0002, True)


def expensive_transform(store_s: float | None = None, read_s: float | None = None,
                        at: tuple[str, ...] = ("transform_1",), **kwargs) -> Profile:
    """2 workers on 2 cores, the blur most of each sample's time; ``store_s`` and
    ``read_s`` per sample measured for a cache after each stage of ``at`` (the blur's)."""
    kwargs.setdefault("num_workers", 2)
    profile = loader_profile((0.002, 0.0018), (RESIZE, BLUR, FLIP), wait_s=9.0, step_s=1.0,
                             **kwargs)
    pipeline = profile.pipelines[0]
    stages = tuple(
        dataclasses.replace(s, stats=dataclasses.replace(
            s.stats, sample_cache_store_s=store_s, sample_cache_read_s=read_s))
        if s.id in at else s
        for s in pipeline.stages
    )
    return dataclasses.replace(profile, pipelines=(dataclasses.replace(pipeline,
                                                                       stages=stages),))


def cache_after_blur(profile: Profile):
    return next(w for w in diagnose(profile).what_ifs
                if w.knob == "cache" and w.stage_id == "transform_1")


def test_reading_the_samples_back_is_charged_to_the_pool_on_every_later_pass():
    free = cache_after_blur(expensive_transform())
    charged = cache_after_blur(expensive_transform(store_s=0.0, read_s=0.005))
    # Once full, each batch of 8 still reads 8 samples back: 40 ms of the 2 workers'
    # time on top of the flip and collation (1.8 ms), where the free cache left the
    # step (100/s) as the bound.
    assert free.steady_rate == pytest.approx(100.0)
    assert charged.steady_rate == pytest.approx(2 / (0.040 + 8 * 0.0002 + 0.01 * 0.002 * 8),
                                                 rel=0.01)
    assert charged.feasible
    assert "reading its samples back costs 40 ms of CPU per root element" in charged.reason


def test_storing_the_samples_slows_the_pass_that_fills_the_cache():
    profile = expensive_transform(store_s=0.010, read_s=0.0)
    charged = cache_after_blur(profile)
    as_run = scene(profile, profile.pipelines[0]).predicted_rate
    # The first pass does all it did as run, plus 80 ms of writes per batch of 8.
    per_batch = 8 * (0.0018 + 0.001 + 0.020 + 0.0002) + 0.01 * 0.002 * 8
    first = 2 / (per_batch + 0.080)
    assert first < as_run
    assert charged.predicted_rate == pytest.approx(2 / (1 / first + 1 / charged.steady_rate),
                                                   rel=0.01)
    assert "storing them 80 ms on the first pass" in charged.reason


def test_a_cache_that_costs_about_what_it_saves_over_the_run_is_not_proposed():
    profile = expensive_transform(store_s=0.030, read_s=0.010,
                                  at=("fetch", "transform_0", "transform_1"))
    charged = cache_after_blur(profile)
    assert not charged.feasible
    assert "over the run's 2 passes it would average" in charged.reason
    assert "reading its samples back costs 80 ms" in charged.reason
    plan_caches = [w for w in diagnose(profile).what_ifs if w.knob == "cache" and w.feasible]
    assert plan_caches == []


def test_the_plan_averages_the_cache_with_its_filling_pass_slowed_by_the_writes():
    profile = expensive_transform(store_s=0.004, read_s=0.004)
    diagnosis = diagnose(profile)
    charged = next(w for w in diagnosis.what_ifs if w.knob == "cache" and w.feasible)
    (pipeline,) = derive_plan(profile, (diagnosis,), Path("train.py")).pipelines
    (setting,) = pipeline.settings
    assert setting.cache == "memory" and setting.stage_id == "transform_1"
    # No parallelism changes: the plan's rate is the what-if's, first pass slowed by the writes.
    assert charged.first_pass_rate < scene(profile, profile.pipelines[0]).predicted_rate
    assert pipeline.predicted_rate == pytest.approx(charged.predicted_rate)


def waiting_fetch(step_s: float) -> Profile:
    """One worker whose samples wait 20 ms on storage; caching one after the fetch or the
    resize costs 2 ms to store and 1 ms to read back."""
    profile = loader_profile((0.020, 0.0005), (RESIZE,), num_workers=1, wait_s=15.0,
                             step_s=step_s)
    pipeline = profile.pipelines[0]
    stages = tuple(
        dataclasses.replace(s, stats=dataclasses.replace(
            s.stats, sample_cache_store_s=0.002, sample_cache_read_s=0.001))
        if s.id in ("fetch", "transform_0") else s
        for s in pipeline.stages
    )
    return dataclasses.replace(profile, pipelines=(dataclasses.replace(pipeline,
                                                                       stages=stages),))


def test_a_cache_is_weighed_with_the_plans_parallelism_not_the_run_as_it_was():
    # With a 2 ms step, 32 workers make 147/s; the cache read back by those 32 workers
    # makes more once full. Taken at the one worker the run had, it made less than the
    # 32 workers without it, and the plan left it out.
    profile = waiting_fetch(step_s=0.2)
    (pipeline,) = derive_plan(profile, (diagnose(profile),), Path("train.py")).pipelines
    settings = {s.stage_id: s for s in pipeline.settings}
    assert settings["workers"].parallelism == 32
    assert settings["transform_0"].cache == "memory"
    assert settings["transform_0"].predicted_rate > settings["workers"].predicted_rate
    assert settings["workers"].predicted_rate < pipeline.predicted_rate


def test_a_cache_that_adds_nothing_to_the_plans_parallelism_is_left_out_with_a_note():
    # More workers reach the step's 100/s, which the cache cannot beat.
    profile = waiting_fetch(step_s=1.0)
    diagnosis = diagnose(profile)
    assert any(w.knob == "cache" and w.feasible for w in diagnosis.what_ifs)
    plan = derive_plan(profile, (diagnosis,), Path("train.py"))
    (planned,) = plan.pipelines
    assert [(s.stage_id, s.cache) for s in planned.settings] == [("workers", None)]
    assert any("is not planned: with the plan's other settings the run would average" in n
               for n in plan.notes)


def test_the_cost_of_caching_an_image_is_measured_and_leaves_no_directory():
    image = pytest.importorskip("PIL.Image").new("RGB", (400, 300))
    before = set(SHARED_MEMORY.glob("plumber-cache-*")) if SHARED_MEMORY.is_dir() else set()
    cost = sample_cache_cost((image, 3))
    assert cost is not None and cost.store_s > 0 and cost.read_s > 0
    after = set(SHARED_MEMORY.glob("plumber-cache-*")) if SHARED_MEMORY.is_dir() else set()
    assert after == before


def test_a_sample_the_cache_cannot_store_has_no_cost():
    assert sample_cache_cost({"label": 1, "fn": lambda x: x}) is None


def test_a_process_told_not_to_measure_leaves_the_cost_to_the_loaders_first_worker():
    recorder = StageRecorder(1, 1)
    recorder.probes_cache_costs = False
    recorder.probe_cache_cost(FETCH, [1.0] * 10_000)
    assert recorder.cache_costs == {} and recorder.nested_cpu == 0


def test_a_worker_measures_each_cache_point_once_outside_every_stages_time():
    recorder = StageRecorder(0, 1)
    recorder.probe_cache_cost(FETCH, [1.0] * 10_000)
    nested = recorder.nested_cpu
    first = recorder.cache_costs[FETCH]
    assert first is not None and nested > 0  # fetch leaves it out as nested time
    recorder.probe_cache_cost(FETCH, [2.0] * 10_000)
    assert recorder.cache_costs[FETCH] is first and recorder.nested_cpu == nested
    assert recorder.stages == {}  # no stage was timed for it
    snapshot = recorder.snapshot()
    again = WorkerSnapshot.from_json(json.loads(json.dumps(snapshot.to_json())))
    assert again.cache_costs == {FETCH: first}

