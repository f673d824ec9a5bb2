"""Passes over the data counted per iterator: an epoch loop's cache on synthetic profiles.

The pipeline reads records of a size TF does not know (a TFRecord file and a
filter), decodes each (8 ms of CPU, 10 kB out), batches by 10 and prefetches.
An epoch is 1000 records, 100 root elements; ``epochs`` passes of it ran, on
2 cores with a 2 ms training step. Per root element the CPU demand is
(0.5 + 0.1 + 8 + 0.1 + 0.01) / 100 = 0.0871 s, so the cores allow
2 / 0.0871 = 22.96/s; with the decode cached only batch and prefetch remain
(0.0011 s, 1818/s) and the step's 500/s binds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from synthetic_profiles import loader_profile, make_profile, stage

from plumber.analyzers.cache import average_rate, run_passes
from plumber.analyzers.diagnose import diagnose
from plumber.records.profile import IteratorPass, Profile

WHOLE = IteratorPass(100, True)


def epoch_loop(*passes: IteratorPass, epochs: float = 3, shuffled: bool = False,
               **kwargs: Any) -> Profile:
    """``epochs`` epochs of the module's pipeline, read by iterators that made ``passes``."""
    records = round(1000 * epochs)
    batches = round(100 * epochs)
    shuffle = [stage("shuffle-0", "shuffle", records, 0.01, knobs={"random": True})]
    return make_profile(
        stage("source-0", "source", records, 0.5 * epochs, op="TFRecord",
              bytes_per_element=1000),
        stage("filter-0", "filter", records, 0.1 * epochs),
        *(shuffle if shuffled else []),
        stage("map-0", "map", records, 8.0 * epochs, parallelism=2, bytes_per_element=10_000,
              line=5),
        stage("batch-0", "batch", batches, 0.1 * epochs, bytes_per_element=100_000),
        stage("prefetch-0", "prefetch", batches, 0.01 * epochs, bytes_per_element=100_000),
        wait_s=4.0 * epochs,
        step_s=0.2 * epochs,
        steps=batches,
        passes=passes,
        **kwargs,
    )


def map_cache(profile: Profile) -> Any:
    (found,) = [w for w in diagnose(profile).what_ifs if w.knob == "cache"
                and w.stage_id == "map-0"]
    return found


def test_three_whole_passes_over_data_of_unknown_size_make_a_cache_pay() -> None:
    profile = epoch_loop(WHOLE, WHOLE, WHOLE)
    diagnosis = diagnose(profile)
    assert diagnosis.predicted_rate == pytest.approx(2 / 0.0871)
    cache = map_cache(profile)
    assert cache.feasible
    assert cache.steady_rate == pytest.approx(500.0)
    # The whole run: the first pass fills the cache at the as-run rate, two replay it.
    assert cache.predicted_rate == pytest.approx(3 / (0.0871 / 2 + 2 / 500.0))
    assert "averaged over the run's 3 passes" in cache.reason
    assert "1000 elements, size from the 3 pass(es) this run read to the end" in cache.reason
    assert any(r.new.endswith(".cache()") for r in diagnosis.recommendations)


def test_without_recorded_passes_the_run_counts_as_one_pass() -> None:
    cache = map_cache(epoch_loop())
    assert not cache.feasible
    assert "read its data 1.0 time(s)" in cache.reason


def test_a_pass_abandoned_midway_counts_for_its_share_of_an_epoch() -> None:
    profile = epoch_loop(WHOLE, WHOLE, IteratorPass(50, False), epochs=2.5)
    assert run_passes(profile.pipelines[0]) == pytest.approx(2.5)
    cache = map_cache(profile)
    assert cache.feasible
    assert "1000 elements" in cache.reason
    assert "averaged over the run's 2.5 passes" in cache.reason
    assert cache.predicted_rate == pytest.approx(average_rate(2.5, 2 / 0.0871, 500.0))


def test_passes_that_differ_in_length_make_an_epoch_of_their_mean() -> None:
    # A filter that drops different records each epoch: 100 and 96 root elements.
    profile = epoch_loop(WHOLE, IteratorPass(96, True), epochs=1.96)
    assert run_passes(profile.pipelines[0]) == pytest.approx(196 / 98)


def test_no_cache_when_every_iterator_stopped_before_the_end_of_the_data() -> None:
    # Each epoch breaks out of its loop: TF would discard the unfinished cache every time,
    # also where the size is known.
    partial = IteratorPass(60, False)
    unknown = map_cache(epoch_loop(partial, partial, partial, epochs=1.8))
    assert not unknown.feasible
    assert "no iterator was seen reading the data to its end" in unknown.reason
    profile = epoch_loop(partial, partial, partial, partial, epochs=2.4)
    pipeline = profile.pipelines[0]
    known = dataclasses.replace(pipeline, stages=tuple(
        dataclasses.replace(s, knobs={**s.knobs, "cardinality": 1000})
        if s.id in ("source-0", "filter-0", "map-0") else s for s in pipeline.stages))
    cache = map_cache(dataclasses.replace(profile, pipelines=(known,)))
    assert not cache.feasible
    assert "TF discards an unfinished cache" in cache.reason


def test_a_sample_cache_fills_from_partial_passes_too() -> None:
    # A DataLoader's cache keeps each sample it fetched, whether or not the pass ended.
    profile = loader_profile((0.01, 0.01), (("ToTensor", 0.0005, 0.0005, False),),
                             num_workers=2, wait_s=4.0, step_s=0.2)
    pipeline = dataclasses.replace(profile.pipelines[0],
                                   passes=(IteratorPass(50, False), IteratorPass(50, False)))
    found = {w.stage_id: w for w in diagnose(dataclasses.replace(profile, pipelines=(pipeline,)))
             .what_ifs if w.knob == "cache"}
    assert found["transform_0"].feasible


def test_a_run_stopped_after_whole_passes_still_knows_its_epoch() -> None:
    stopped = epoch_loop(WHOLE, WHOLE, IteratorPass(40, False), epochs=2.4,
                         bounded_by="steps")
    assert map_cache(stopped).feasible
    early = map_cache(epoch_loop(IteratorPass(40, False), epochs=0.4, bounded_by="steps"))
    assert not early.feasible
    assert "the run stopped before any pass read the data to its end" in early.reason


def test_whole_passes_never_allow_a_cache_after_a_random_stage() -> None:
    cache = map_cache(epoch_loop(WHOLE, WHOLE, WHOLE, shuffled=True))
    assert not cache.feasible
    assert "shuffle-0 is random or stateful" in cache.reason


def test_passes_survive_a_saved_profile_and_an_older_profile_has_none() -> None:
    profile = epoch_loop(WHOLE, WHOLE, IteratorPass(40, False), epochs=2.4)
    loaded = Profile.from_dict(profile.to_dict())
    assert loaded.pipelines[0].passes == (WHOLE, WHOLE, IteratorPass(40, False))
    older = profile.to_dict()
    del older["pipelines"][0]["passes"]
    assert Profile.from_dict(older).pipelines[0].passes == ()
