"""``plumber.optimize(make_dataset, plan=None)`` on real tf.data pipelines."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")

import plumber  # noqa: E402
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting  # noqa: E402

pytestmark = pytest.mark.slow

HERE = Path(__file__).name


def heavy(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 150, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


def make_dataset():
    dataset = tf.data.Dataset.range(400).map(heavy, num_parallel_calls=1)  # the map line
    return dataset.batch(8)


MAP_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                if line.endswith("# the map line"))


def stages(dataset):
    chain = [dataset]
    while chain[-1]._inputs():
        chain.append(chain[-1]._inputs()[0])
    return [type(d).__name__ for d in chain]


def test_optimize_with_a_plan_rebuilds_the_pipeline_with_its_settings_and_same_elements():
    plan = Plan(script=__file__, pipelines=(PipelinePlan(
        root=StageRef(HERE, MAP_LINE + 1, "batch"),
        settings=(StageSetting(StageRef(HERE, MAP_LINE, "map"), "map-0", parallelism=2,
                               cache="memory"),),
    ),))
    tuned = plumber.optimize(make_dataset, plan)
    assert stages(tuned)[:3] == ["_BatchDataset", "CacheDataset", "_ParallelMapDataset"]
    assert int(tuned._inputs()[0]._inputs()[0]._num_parallel_calls) == 2
    as_written = [b.numpy().tolist() for b in make_dataset()]
    assert [b.numpy().tolist() for b in tuned] == as_written


def test_optimize_without_a_plan_profiles_tunes_and_measures():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = plumber.optimize(make_dataset, duration=2)
    messages = [str(w.message) for w in caught]
    maps = [d for d in _walk(tuned) if "Map" in type(d).__name__]
    if any("not faster" in m for m in messages):  # a loaded machine can measure that
        assert [int(d._num_parallel_calls) for d in maps] == [1]
    else:
        assert [int(d._num_parallel_calls) for d in maps] == [2]


def test_optimize_warns_about_plan_stages_it_cannot_find():
    plan = Plan(script=__file__, pipelines=(PipelinePlan(
        root=StageRef(HERE, 1, "batch"),
        settings=(StageSetting(StageRef(HERE, 1, "map"), "map-7", parallelism=3),),
    ),))
    with pytest.warns(UserWarning, match="plan stage not found"):
        plumber.optimize(make_dataset, plan)


def test_optimize_refuses_what_it_cannot_tune_with_a_clear_message():
    with pytest.raises(TypeError, match="a tf.data.Dataset, a torch DataLoader, or a function"):
        plumber.optimize(iter(make_dataset()))


def _walk(dataset):
    yield dataset
    for child in dataset._inputs():
        yield from _walk(child)
