"""A plan's file cache on tf.data: the folder is made, the cache fills in the first pass and
the later passes and runs read the same elements from it; its key follows the pipeline and the
files it reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import plumber
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting

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
    assert len(list((tmp_path / "not-yet" / "decoded").glob("*.index"))) == 1
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


def keyed(make: object) -> str | None:
    from plumber.tf.filecache import pipeline_key

    return pipeline_key(make())


def test_the_key_follows_captured_values_functions_and_the_files_read(tmp_path):
    factor = tf.constant(3, tf.int64)
    data = tmp_path / "lines.txt"
    data.write_text("a\nb\n")

    def scaled(k: int):
        return tf.data.Dataset.range(4).map(lambda x: x * k + factor)

    key = keyed(lambda: scaled(2))

    @tf.function
    def unrelated(x):
        return x + 1

    unrelated(tf.constant(1))  # shifts the counter in traced function names
    assert keyed(lambda: scaled(2)) == key
    assert keyed(lambda: scaled(5)) != key
    assert keyed(lambda: tf.data.Dataset.range(4).map(lambda x: x * 2 - factor)) != key
    factor = tf.constant(4, tf.int64)
    assert keyed(lambda: scaled(2)) != key
    lines = keyed(lambda: tf.data.TextLineDataset(str(data)))
    data.write_text("a\nc\n")
    os.utime(data, ns=(1, 1))
    assert keyed(lambda: tf.data.TextLineDataset(str(data))) not in (None, lines)


def test_a_pipeline_with_python_code_below_the_cache_gets_a_cache_for_this_run_only(tmp_path):
    from plumber.tf.apply import cached

    dataset = tf.data.Dataset.range(3).map(lambda x: tf.py_function(lambda y: y, [x], tf.int64))
    with_cache, where = cached(dataset, str(tmp_path / "decoded"))
    assert "cannot be fingerprinted" in where and "removed at exit" in where
    assert [int(x) for x in with_cache] == [0, 1, 2]
    written = [p.name for p in (tmp_path / "decoded").glob("*.index")]
    assert len(written) == 1 and written[0].startswith(f"run-{os.getpid()}-")
