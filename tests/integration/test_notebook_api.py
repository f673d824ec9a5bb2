"""plumber.profile() on real tf.data pipelines: planted bottleneck, bounds, ends, cleanup."""

from __future__ import annotations

import pytest

import plumber
from plumber.capture import inprocess

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")

from tensorflow.python.data.ops import dataset_ops, iterator_ops  # noqa: E402

PATCHED = (
    (dataset_ops.DatasetV2, "__init__"),
    (iterator_ops.OwnedIterator, "__init__"),
    (iterator_ops.OwnedIterator, "_next_internal"),
    (iterator_ops.OwnedIterator, "__del__"),
)


def originals() -> dict[tuple[type, str], object]:
    return {(owner, name): owner.__dict__.get(name) for owner, name in PATCHED}


def expensive(x):
    """Burns CPU in many small single-threaded TF ops (as tests/.../expensive_map.py)."""

    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 400, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


def make_expensive_map():
    dataset = tf.data.Dataset.range(100_000)
    dataset = dataset.map(expensive, num_parallel_calls=1)
    dataset = dataset.batch(16)
    return dataset.prefetch(2)


MAP_LINE = make_expensive_map.__code__.co_firstlineno + 2


def test_planted_bottleneck_is_named_with_the_line_that_built_it():
    before = originals()
    result = plumber.profile(make_expensive_map, steps=25, cpu_probe=1.0)
    assert originals() == before, "a hook stayed installed"
    (diagnosis,) = result.diagnoses
    assert diagnosis.bottleneck_stage == "map-0"
    assert diagnosis.bottleneck_kind == "parallelism"
    stages = result.stages.set_index("stage")
    assert stages.loc["map-0", "source"].endswith(f"test_notebook_api.py:{MAP_LINE}")
    assert stages.loc["map-0", "bottleneck"]
    run = result.profile.run
    assert run.bounded_by == "steps" and result.profile.pipelines[0].consumer.steps == 25
    assert inprocess.CONSUMER_NOTE in run.notes
    assert not any("built before" in note for note in run.notes)
    rec = result.recommend()[0]
    assert (rec.stage_id, rec.old, rec.new) == (
        "map-0", "num_parallel_calls=1", "num_parallel_calls=2"
    )
    page = result._repr_html_()
    assert f"test_notebook_api.py:{MAP_LINE}" in page and "as fast as possible" in page


def test_infinite_dataset_without_bounds_stops_at_the_default_and_says_so(monkeypatch):
    monkeypatch.setattr(inprocess, "DEFAULT_DURATION_S", 1.0)
    dataset = tf.data.Dataset.range(10).map(lambda x: x * 2).repeat()
    result = plumber.profile(dataset, cpu_probe=0)
    run = result.profile.run
    assert run.bounded_by == "duration"
    assert result.profile.pipelines[0].infinite
    assert any("infinite" in note and "default 1 s" in note for note in run.notes)
    # Built before profile() was called: no source lines, and the result says why.
    assert inprocess.PREBUILT_NOTE in run.notes
    assert result.stages["source"].isna().all()
    assert 0.9 < run.duration_s < 10


def test_duration_bound_given_by_the_caller_is_reported_as_such():
    result = plumber.profile(tf.data.Dataset.range(10).repeat(), duration=0.5, cpu_probe=0)
    assert result.profile.run.bounded_by == "duration"
    assert any("duration=0.5 s" in note for note in result.profile.run.notes)


def test_dataset_that_ends_before_the_bound_stops_there_and_says_so():
    result = plumber.profile(lambda: tf.data.Dataset.range(5).batch(2), steps=100, cpu_probe=0)
    run = result.profile.run
    assert run.bounded_by is None
    assert any("ended after 3 elements" in note for note in run.notes)
    assert result.profile.pipelines[0].consumer.steps == 3


def test_empty_dataset_gives_an_empty_profile_that_says_so():
    result = plumber.profile(tf.data.Dataset.range(0), cpu_probe=0)
    assert result.profile.pipelines == () and result.diagnoses == ()
    assert any("empty" in note for note in result.profile.run.notes)
    assert "No input pipeline was observed" in result._repr_html_()
    assert result.stages.empty


def test_pipeline_error_propagates_and_leaves_no_hook_behind():
    before = originals()

    def failing():
        return tf.data.Dataset.range(10).map(
            lambda x: tf.debugging.assert_less(x, tf.constant(3, tf.int64)) and x
        )

    with pytest.raises(tf.errors.InvalidArgumentError):
        plumber.profile(failing, cpu_probe=0)
    assert originals() == before


def test_builder_returning_something_else_is_refused_and_unhooked():
    before = originals()
    with pytest.raises(TypeError, match="returned builtins.list"):
        plumber.profile(lambda: [1, 2, 3])
    assert originals() == before


def test_an_iterator_is_refused_with_a_hint():
    with pytest.raises(TypeError, match="pass the dataset it iterates"):
        plumber.profile(iter(tf.data.Dataset.range(3)))
