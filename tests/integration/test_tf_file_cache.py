"""A plan's file cache on tf.data: the folder is made, the cache fills in the first pass and
the later passes and runs read the same elements from it."""

from __future__ import annotations

from pathlib import Path

import pytest

import plumber
from plumber.tuner.plan import PipelinePlan, Plan, StageRef, StageSetting

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")

HERE = Path(__file__).resolve()


def make_dataset():
    dataset = tf.data.Dataset.range(50)
    dataset = dataset.map(lambda x: x * 3)  # the cached stage
    return dataset.batch(10)


def test_a_file_cache_is_written_once_and_replays_the_same_elements(tmp_path):
    line = next(i for i, text in enumerate(HERE.read_text().splitlines(), 1)
                if "# the cached stage" in text and "next(" not in text)
    prefix = tmp_path / "not-yet" / "decoded"
    ref = StageRef(HERE.name, line, "map")
    plan = Plan(script=str(HERE), pipelines=(PipelinePlan(
        root=StageRef(HERE.name, line + 1, "batch"),
        settings=(StageSetting(ref, "map-0", cache=str(prefix)),)),))
    expected = [b.numpy().tolist() for b in make_dataset()]
    cached = plumber.optimize(make_dataset, plan)
    assert [b.numpy().tolist() for b in cached] == expected
    assert (tmp_path / "not-yet" / "decoded.index").exists()
    assert [b.numpy().tolist() for b in cached] == expected
    again = plumber.optimize(make_dataset, plan)
    assert [b.numpy().tolist() for b in again] == expected


def make_taken():
    dataset = tf.data.Dataset.range(40).map(lambda x: x + 1)
    return dataset.take(20)  # the root the plan tunes


def test_a_plan_puts_its_thread_pool_and_prefetch_after_a_take_at_the_root():
    line = next(i for i, text in enumerate(HERE.read_text().splitlines(), 1)
                if "# the root the plan tunes" in text and "next(" not in text)
    root = StageRef(HERE.name, line, "take")
    plan = Plan(script=str(HERE), pipelines=(PipelinePlan(
        root=root, settings=(StageSetting(root, "take-0", prefetch=2, threads=7),)),))
    tuned = plumber.optimize(make_taken, plan)
    assert tuned.options().threading.private_threadpool_size == 7
    assert [int(x) for x in tuned] == list(range(1, 21))
