"""Kinds of written tf.data stages, read from real dataset objects."""

import pytest

tf = pytest.importorskip("tensorflow")

from plumber.tf.written import dataset_kind, read_written  # noqa: E402


def kinds(dataset) -> dict[str, str]:
    return {s.op: s.kind for s in read_written(dataset, lambda obj: None).walk()}


def test_an_unknown_op_that_reads_another_dataset_is_other_not_a_source():
    dataset = tf.data.Dataset.range(4).map(lambda x: x * 2)
    dataset = dataset.apply(tf.data.experimental.ignore_errors())
    assert kinds(dataset) == {"Range": "source", "Map": "map", "IgnoreErrors": "other"}
    assert dataset_kind(dataset) == "other"


def test_readers_and_the_random_dataset_stay_sources():
    assert dataset_kind(tf.data.Dataset.range(3)) == "source"
    assert dataset_kind(tf.data.Dataset.random(seed=1)) == "source"
    assert dataset_kind(tf.data.TFRecordDataset(["missing.tfrecord"])) == "source"


def test_the_kind_of_each_stage_agrees_with_its_object():
    dataset = tf.data.Dataset.range(8).scan(tf.constant(0, tf.int64), lambda s, x: (s + x, s))
    dataset = dataset.batch(2).apply(tf.data.experimental.ignore_errors()).prefetch(1)
    for stage in read_written(dataset, lambda obj: None).walk():
        assert dataset_kind(stage.dataset) == stage.kind, stage.op
