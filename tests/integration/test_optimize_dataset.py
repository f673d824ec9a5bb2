"""``plumber.optimize(dataset, plan=None)`` on built tf.data datasets: rebuilt, same elements."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest

tf = pytest.importorskip("tensorflow")

import plumber  # noqa: E402
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting  # noqa: E402

pytestmark = pytest.mark.slow


def heavy(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 150, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


def plan_of(*settings: StageSetting) -> Plan:
    return Plan(script=__file__, pipelines=(PipelinePlan(
        root=StageRef("notebook", 1, "batch"), settings=settings,
    ),))


def setting(stage_id: str, **knobs) -> StageSetting:
    return StageSetting(StageRef("notebook", 1, stage_id.rpartition("-")[0]), stage_id, **knobs)


def chain(dataset) -> list:
    """The dataset objects from the root down its first inputs."""
    out = [dataset]
    while out[-1]._inputs():
        out.append(out[-1]._inputs()[0])
    return out


def names(dataset) -> list[str]:
    return [type(d).__name__ for d in chain(dataset)]


def elements(dataset) -> list:
    return [_plain(e) for e in dataset.as_numpy_iterator()]


def _plain(element):
    if isinstance(element, tuple):
        return tuple(_plain(e) for e in element)
    return element.tolist() if hasattr(element, "tolist") else element


def test_a_sequential_expensive_map_gets_parallelism_and_the_same_elements_in_order():
    dataset = tf.data.Dataset.range(64).map(heavy).batch(8)
    tuned = plumber.optimize(dataset, plan_of(setting("map-0", parallelism=2)))
    assert names(tuned) == ["_BatchDataset", "_ParallelMapDataset", "_RangeDataset"]
    assert int(chain(tuned)[1]._num_parallel_calls) == 2
    assert chain(tuned)[2] is chain(dataset)[2]  # the untouched source is shared
    assert elements(tuned) == elements(dataset)


def test_every_stage_above_a_changed_one_is_made_again_with_the_same_elements():
    options = tf.data.Options()
    options.deterministic = True
    dataset = (tf.data.Dataset.range(30).map(lambda x: x * 3).filter(lambda x: x % 2 == 0)
               .flat_map(lambda x: tf.data.Dataset.from_tensors(x).repeat(2)).cache()
               .repeat(2).skip(3).take(40).batch(4).with_options(options).prefetch(2))
    tuned = plumber.optimize(dataset, plan_of(setting("map-0", parallelism=2)))
    assert names(tuned)[-2:] == ["_ParallelMapDataset", "_RangeDataset"]
    assert all(new is not old for new, old in zip(chain(tuned)[:-1], chain(dataset)[:-1],
                                                   strict=True))
    assert elements(tuned) == elements(dataset)


def test_an_unbatch_is_rebuilt_with_the_same_elements_or_refused_with_a_warning():
    dataset = tf.data.Dataset.range(24).map(heavy).batch(4).unbatch().batch(6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = plumber.optimize(dataset, plan_of(setting("map-0", parallelism=2)))
    messages = [str(w.message) for w in caught if w.filename == __file__]
    if tuned is dataset:  # plumber read its stages out of step with the graph
        assert any("could not be read reliably" in m for m in messages)
    else:
        assert "_ParallelMapDataset" in names(tuned)
        assert elements(tuned) == elements(dataset)


def test_a_cache_below_a_random_map_keeps_the_elements_and_the_randomness():
    dataset = (tf.data.Dataset.range(32).map(lambda x: x * 2).shuffle(8)
               .map(lambda x: (x, tf.random.uniform([]))))
    tuned = plumber.optimize(dataset, plan_of(setting("map-0", cache="memory"),
                                              setting("map-1", parallelism=2)))
    assert names(tuned) == ["_ParallelMapDataset", "_ShuffleDataset", "CacheDataset",
                            "_MapDataset", "_RangeDataset"]
    first, second = elements(tuned), elements(tuned)
    assert Counter(x for x, _ in first) == Counter(x for x, _ in elements(dataset))
    assert [n for _, n in first] != [n for _, n in second]  # the random map runs each epoch


def test_a_plan_below_a_stage_plumber_cannot_rebuild_returns_the_dataset_unchanged():
    dataset = tf.data.Dataset.range(12).map(heavy).window(3).flat_map(lambda w: w.batch(3))
    with pytest.warns(UserWarning, match="returned unchanged: .*_WindowDataset"):
        tuned = plumber.optimize(dataset, plan_of(setting("map-0", parallelism=2)))
    assert tuned is dataset


def test_a_plan_above_a_stage_plumber_cannot_rebuild_keeps_that_part_as_it_is():
    dataset = tf.data.Dataset.range(12).window(3).flat_map(lambda w: w.batch(3)).map(heavy)
    tuned = plumber.optimize(dataset, plan_of(setting("map-0", parallelism=2, prefetch=2)))
    assert names(tuned)[:2] == ["_PrefetchDataset", "_ParallelMapDataset"]
    assert chain(tuned)[2] is chain(dataset)[1]  # the flat_map over windows, shared
    assert elements(tuned) == elements(dataset)


def test_zip_concatenate_and_interleave_are_rebuilt_with_the_same_elements():
    pairs = tf.data.Dataset.zip((tf.data.Dataset.range(6).map(heavy), tf.data.Dataset.range(6)))
    extra = tf.data.Dataset.from_tensors((tf.constant(9.0), tf.constant(9, tf.int64)))
    joined = pairs.concatenate(extra)
    nested = (tf.data.Dataset.range(1, 5).map(lambda n: n * 2)
              .interleave(tf.data.Dataset.range, cycle_length=2).batch(3))
    tuned_joined = plumber.optimize(joined, plan_of(setting("map-0", parallelism=2)))
    tuned_nested = plumber.optimize(nested, plan_of(setting("map-0", parallelism=2),
                                                    setting("interleave-0", parallelism=2)))
    assert names(tuned_joined)[:3] == ["_ConcatenateDataset", "_ZipDataset",
                                       "_ParallelMapDataset"]
    assert names(tuned_nested)[:3] == ["_BatchDataset", "_ParallelInterleaveDataset",
                                       "_ParallelMapDataset"]
    assert elements(tuned_joined) == elements(joined)
    assert elements(tuned_nested) == elements(nested)


def test_a_setting_for_a_stage_the_dataset_lacks_is_named_in_a_warning():
    dataset = tf.data.Dataset.range(8).map(heavy)
    with pytest.warns(UserWarning, match=r"plan stage not found.*\(map-3\)"):
        tuned = plumber.optimize(dataset, plan_of(setting("map-3", parallelism=2)))
    assert tuned is dataset


def test_without_a_plan_an_expensive_map_is_rewritten_when_it_measures_faster():
    # One call at a time, said explicitly: a map written without
    # num_parallel_calls is already run in parallel by TF (map_parallelization),
    # and plumber rightly leaves it alone.
    dataset = tf.data.Dataset.range(2000).map(heavy, num_parallel_calls=1).batch(8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = plumber.optimize(dataset, duration=2)
    messages = [str(w.message) for w in caught if w.filename == __file__]
    if any("not faster" in m for m in messages):  # a loaded machine can measure that
        assert tuned is dataset
        return
    assert not messages
    maps = [d for d in chain(tuned) if "Map" in type(d).__name__]
    assert [type(d).__name__ for d in maps] == ["_ParallelMapDataset"]
    assert int(maps[0]._num_parallel_calls) == -1 or int(maps[0]._num_parallel_calls) > 1
    assert elements(tuned.take(5)) == elements(dataset.take(5))
