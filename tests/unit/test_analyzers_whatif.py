"""What-ifs on synthetic profiles: cache placement and its rules, prefetch depth.

The cached pipeline reads 1000 records, decodes them (8 s of CPU, 10 kB out
per element), shuffles, batches by 10 and prefetches: 100 root elements on
2 cores with a 2 ms training step; unless a test says otherwise, the 1000
records are two passes over 500 (their cardinality). Per root element the CPU demand is
(0.5 + 8 + 0.05 + 0.1 + 0.01) / 100 = 0.0866 s, so the cores allow
2 / 0.0866 = 23.1/s; the step allows 100 / 0.2 = 500/s.
"""

from __future__ import annotations

from typing import Any

import pytest
from synthetic_profiles import make_profile, stage

from plumber.analyzers.diagnose import diagnose
from plumber.records.profile import Profile


def cached_pipeline(*above_shuffle: Any, map_knobs: dict[str, Any] | None = None,
                    map_elements: int = 1000, epochs: int | None = 2,
                    **kwargs: Any) -> Profile:
    """The pipeline of the module docstring; ``above_shuffle`` stages go before the batch.

    ``epochs`` passes give source and map a known cardinality; None leaves the
    size to be inferred from the run.
    """
    epoch = {"cardinality": 1000 // epochs} if epochs else {}
    return make_profile(
        stage("source-0", "source", 1000, 0.5, op="TFRecord", bytes_per_element=1000,
              knobs=epoch),
        stage("map-0", "map", map_elements, 8.0, parallelism=2,
              knobs={**epoch, **(map_knobs or {})}, bytes_per_element=10_000, line=5),
        stage("shuffle-0", "shuffle", 1000, 0.05, knobs={"buffer_size": 100, "random": True},
              bytes_per_element=10_000),
        *above_shuffle,
        stage("batch-0", "batch", 100, 0.1, bytes_per_element=100_000),
        stage("prefetch-0", "prefetch", 100, 0.01, bytes_per_element=100_000),
        wait_s=4.2,
        step_s=0.2,
        **kwargs,
    )


def caches(profile: Profile) -> dict[str, Any]:
    return {w.stage_id: w for w in diagnose(profile).what_ifs if w.knob == "cache"}


def test_cache_after_the_decode_removes_its_demand_from_the_second_epoch_on() -> None:
    diagnosis = diagnose(cached_pipeline())
    assert diagnosis.bottleneck_kind == "cpu"
    assert diagnosis.predicted_rate == pytest.approx(2 / 0.0866)
    found = {w.stage_id: w for w in diagnosis.what_ifs if w.knob == "cache"}
    # Without source and decode: 2 / 0.0016 = 1250/s for the cores, so the step's 500/s binds.
    assert found["map-0"].feasible
    assert found["map-0"].steady_rate == pytest.approx(500.0)
    # Averaged over the two passes, the first still at the as-run 23.1/s.
    average = 2 / (1 / (2 / 0.0866) + 1 / 500.0)
    assert found["map-0"].predicted_rate == pytest.approx(average)
    assert found["map-0"].speedup == pytest.approx(average / (100 / 4.4))
    assert "5 MB" in found["map-0"].reason
    # Without the source only: 2 / 0.0816 = 24.5/s.
    assert found["source-0"].feasible
    assert found["source-0"].steady_rate == pytest.approx(2 / 0.0816)
    best = diagnosis.recommendations[0]
    assert (best.stage_id, best.old, best.new) == ("map-0", ".map(...)", ".map(...).cache()")
    assert best.source is not None and best.source.line == 5


def test_cache_after_a_shuffle_is_ruled_out_even_where_it_would_pay_most() -> None:
    # A 6 s normalising map after the shuffle: caching after it would leave only the
    # step's 500/s, but it follows the shuffle. After the decode, 2 / 0.0616 = 32.5/s.
    # Ten passes, so that the cache after the decode pays on average over the run.
    normalise = stage("map-1", "map", 1000, 6.0, parallelism=2, bytes_per_element=10_000)
    diagnosis = diagnose(cached_pipeline(normalise, epochs=10))
    found = {w.stage_id: w for w in diagnosis.what_ifs if w.knob == "cache"}
    assert not found["map-1"].feasible
    assert found["map-1"].reason.startswith("Not proposed: shuffle-0 is random or stateful")
    assert "shuffle-0" not in found and "batch-0" not in found  # same reason: listed once
    assert found["map-0"].feasible
    assert found["map-0"].steady_rate == pytest.approx(2 / 0.0616)
    assert [r.stage_id for r in diagnosis.recommendations] == ["map-0"]


def test_cache_too_big_for_the_memory_budget_is_ruled_out_and_a_smaller_one_kept() -> None:
    # 5 MB of decoded elements against half of 8 MB available; the 0.5 MB of records fit.
    found = caches(cached_pipeline(memory=8_000_000))
    assert not found["map-0"].feasible
    assert "5 MB, more than 50% of the 8 MB" in found["map-0"].reason
    assert found["source-0"].feasible
    assert found["source-0"].steady_rate == pytest.approx(2 / 0.0816)


def test_cache_after_a_random_map_is_ruled_out() -> None:
    found = caches(cached_pipeline(map_knobs={"random": True}))
    assert not found["map-0"].feasible
    assert found["source-0"].feasible


def test_no_cache_on_an_endless_stream_unless_its_cardinality_is_known() -> None:
    repeat = stage("repeat-0", "repeat", 1000, 0.01, knobs={"count": -1})
    endless = caches(cached_pipeline(repeat, infinite=True, epochs=None))
    assert not endless["map-0"].feasible
    assert "endless repeat()" in endless["map-0"].reason
    known = caches(cached_pipeline(repeat, infinite=True, map_knobs={"cardinality": 1000},
                                   map_elements=2000, epochs=None))
    assert known["map-0"].feasible
    assert known["map-0"].steady_rate == pytest.approx(500.0)


def test_no_cache_on_a_stream_that_is_infinite_at_its_source() -> None:
    found = caches(cached_pipeline(infinite=True, epochs=None))
    assert "the stream is infinite" in found["map-0"].reason


def test_no_cache_when_the_run_was_stopped_before_the_data_ended() -> None:
    found = caches(cached_pipeline(bounded_by="steps", epochs=None))
    assert not found["map-0"].feasible
    assert "stopped before the data ended" in found["map-0"].reason


def test_a_finite_repeat_above_divides_the_run_into_epochs() -> None:
    # Two passes: 2000 decoded elements of 10 kB, one epoch of 1000 is 10 MB < 12.5 MB.
    repeat = stage("repeat-0", "repeat", 2000, 0.01, knobs={"count": 2})
    found = caches(cached_pipeline(repeat, map_elements=2000, memory=25_000_000, epochs=None))
    assert found["map-0"].feasible
    assert "1000 elements" in found["map-0"].reason


def test_a_single_pass_gets_no_cache_however_much_it_would_save() -> None:
    found = caches(cached_pipeline(epochs=None))
    assert not found["map-0"].feasible
    assert "read its data 1.0 time(s)" in found["map-0"].reason


def test_deeper_prefetch_is_proposed_when_the_loop_stalls_although_the_pipeline_keeps_up() -> None:
    # The step allows 100/s, the pipeline far more, yet the loop waited 25% of its time:
    # observed 100 / 1.333 = 75/s; a deeper buffer recovers the 100/s.
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 0.1, parallelism=2),
        stage("prefetch-0", "prefetch", 100, 0.001, knobs={"buffer_size": 1}, line=9),
        wait_s=1 / 3,
        step_s=1.0,
        bounded_by="steps",
    )
    diagnosis = diagnose(profile)
    assert not diagnosis.input_bound
    (prefetch,) = [w for w in diagnosis.what_ifs if w.knob == "prefetch"]
    assert prefetch.value == "3"
    assert prefetch.predicted_rate == pytest.approx(100.0)
    assert prefetch.speedup == pytest.approx(100.0 / 75.0)
    (rec,) = diagnosis.recommendations
    assert (rec.old, rec.new) == ("buffer_size=1", "buffer_size=3")
    assert any("waited 25%" in w for w in diagnosis.warnings)


@pytest.mark.parametrize("root_kind", ["config", "take"])
def test_a_prefetch_under_a_pass_through_root_is_the_one_deepened(root_kind) -> None:
    # GIVEN the same pipeline ending in with_options (or take) above its prefetch
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("map-0", "map", 100, 0.1, parallelism=2),
        stage("prefetch-0", "prefetch", 100, 0.001, knobs={"buffer_size": 1}, line=9),
        stage(f"{root_kind}-0", root_kind, 100, 0.0, line=10),
        wait_s=1 / 3,
        step_s=1.0,
        bounded_by="steps",
    )
    # THEN the prefetch below it is deepened, not a second one added above
    (prefetch,) = [w for w in diagnose(profile).what_ifs if w.knob == "prefetch"]
    assert prefetch.stage_id == "prefetch-0"
    assert prefetch.value == "3"


def test_no_prefetch_change_when_the_loop_hardly_waits() -> None:
    profile = make_profile(
        stage("source-0", "source", 100, 0.01),
        stage("prefetch-0", "prefetch", 100, 0.001, knobs={"buffer_size": 1}),
        wait_s=0.01,
        step_s=1.0,
    )
    assert not [w for w in diagnose(profile).what_ifs if w.knob == "prefetch"]
