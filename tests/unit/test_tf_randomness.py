"""Which tf.data stages change between epochs: read from the graph, then seen by running.

Each test builds a real tf.data pipeline the way public code writes it and
checks the knobs plumber records for its stages (``random``/``stateful``
forbid a cache after the stage), or what two fresh passes reveal.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from plumber.tf.determinism import find_random_stages, is_declared_random  # noqa: E402
from plumber.tf.written import WrittenStage, read_written  # noqa: E402


def stages_of(dataset) -> dict[str, WrittenStage]:
    return {s.id: s for s in read_written(dataset, lambda obj: None).walk()}


def jitter(x, y):
    """A random change of every pixel: two passes agree with odds near zero."""
    return x + tf.random.uniform([]), y


def images(count: int = 16):
    pixels = tf.reshape(tf.range(count * 8 * 8 * 3, dtype=tf.float32), [count, 8, 8, 3])
    return tf.data.Dataset.from_tensor_slices((pixels, tf.range(count)))


def test_keras_augmentation_layers_in_a_map_are_random():
    keras = pytest.importorskip("keras")
    augment = keras.Sequential([
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.1),
        keras.layers.RandomZoom(0.1),
    ])
    stages = stages_of(images().map(lambda x, y: (augment(x), y)))
    assert is_declared_random(stages["map-0"])
    assert not is_declared_random(stages["source-0"])


def test_a_single_keras_random_flip_layer_is_random():
    keras = pytest.importorskip("keras")
    flip = keras.layers.RandomFlip("horizontal")
    assert stages_of(images().map(lambda x, y: (flip(x), y)))["map-0"].knobs["random"] is True


def test_py_function_and_numpy_function_bodies_are_unseen_and_so_stateful():
    def noisy(x):
        return x + np.random.uniform()

    base = tf.data.Dataset.range(4)
    py = base.map(lambda x: tf.py_function(noisy, [x], tf.float64))
    numpy = base.map(lambda x: tf.numpy_function(noisy, [x], tf.float64))
    assert stages_of(py)["map-0"].knobs["stateful"] is True
    assert stages_of(numpy)["map-0"].knobs["stateful"] is True


def test_a_from_generator_source_is_stateful_and_the_map_above_it_is_not():
    def samples():
        yield from range(4)

    source = tf.data.Dataset.from_generator(samples, output_signature=tf.TensorSpec([], tf.int64))
    stages = stages_of(source.map(lambda x: x * 2))
    # TF builds from_generator as a flat_map whose function calls the generator
    assert stages["flat_map-0"].knobs["stateful"] is True
    assert "stateful" not in stages["map-0"].knobs


def test_random_ops_inside_a_nested_tf_function_are_found():
    @tf.function
    def shifted(x):
        return tf.cast(x, tf.float32) + tf.random.uniform([])

    stages = stages_of(tf.data.Dataset.range(4).map(lambda x: shifted(x)))
    assert stages["map-0"].knobs["random"] is True


def test_tf_image_random_and_stateless_ops_with_a_changing_seed_are_random():
    flip = images().map(lambda x, y: (tf.image.random_flip_left_right(x), y))
    seeds = tf.data.Dataset.random(seed=4).batch(2)
    stateless = tf.data.Dataset.zip((images(), seeds)).map(
        lambda xy, seed: (tf.image.stateless_random_flip_left_right(xy[0], seed=seed), xy[1])
    )
    assert stages_of(flip)["map-0"].knobs["random"] is True
    stateless_stages = stages_of(stateless)
    assert stateless_stages["map-0"].knobs["random"] is True
    assert stateless_stages["source-1"].op == "Random"
    assert stateless_stages["source-1"].knobs["random"] is True


def test_a_tf_random_generator_in_a_map_is_random():
    generator = tf.random.Generator.from_seed(1)
    stages = stages_of(images().map(lambda x, y: (x + generator.uniform([]), y)))
    assert stages["map-0"].knobs["random"] is True


def test_an_inception_style_random_crop_alone_is_random():
    def random_crop(image):
        box = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.shape(image), bounding_boxes=box, min_object_covered=0.1,
            area_range=(0.05, 1.0), use_image_if_no_bounding_boxes=True,
        )
        return tf.image.resize(tf.slice(image, begin, size), [4, 4])

    stages = stages_of(images().map(lambda x, y: (random_crop(x), y)))
    assert stages["map-0"].knobs["random"] is True


def test_a_deterministic_resize_map_stays_cacheable_after_two_passes():
    dataset = (
        images()
        .map(lambda x, y: (tf.image.resize(x, [4, 4]), y), num_parallel_calls=2)
        .batch(4)
        .prefetch(2)
    )
    written = read_written(dataset, lambda obj: None)
    assert find_random_stages(written) == []
    assert not any(is_declared_random(s) for s in written.walk())


def test_two_passes_find_a_random_map_the_graph_reading_missed_and_only_that_map():
    dataset = images().map(jitter).batch(8)
    written = read_written(dataset, lambda obj: None)
    for stage in written.walk():
        stage.knobs.pop("random", None)
    found = find_random_stages(written)
    assert [s.id for s in found] == ["map-0"]
    stages = {s.id: s for s in written.walk()}
    assert stages["map-0"].knobs["random"] is True
    assert "random" not in stages["batch-0"].knobs
    assert "random" not in stages["source-0"].knobs


def test_a_prefix_that_may_reorder_is_not_compared_but_the_stages_below_it_are():
    dataset = (
        images()
        .map(jitter)
        .map(lambda x, y: (x * 2.0, y), num_parallel_calls=2, deterministic=False)
        .batch(8)
    )
    options = tf.data.Options()
    options.deterministic = False
    written = read_written(dataset.with_options(options), lambda obj: None)
    for stage in written.walk():
        stage.knobs.pop("random", None)
    assert [s.id for s in find_random_stages(written)] == ["map-0"]


def test_a_prefix_holding_a_written_cache_is_not_run_but_the_stages_below_it_are(tmp_path):
    dataset = images().map(jitter).cache(str(tmp_path / "cache")).batch(4)
    written = read_written(dataset, lambda obj: None)
    for stage in written.walk():
        stage.knobs.pop("random", None)
    assert [s.id for s in find_random_stages(written)] == ["map-0"]
    assert list(tmp_path.iterdir()) == []


def test_an_input_that_cannot_be_cleared_in_time_is_marked_with_everything_below_it(
    monkeypatch,
):
    from plumber.tf import determinism

    dataset = images().map(lambda x, y: (x * 2.0, y)).batch(4)
    written = read_written(dataset, lambda obj: None)
    verdicts = {"batch-0": determinism.DIFFER, "map-0": determinism.UNKNOWN}
    seen = {}

    def scripted(stage, count, deadline):
        seen[stage.id] = count
        return verdicts.get(stage.id, determinism.SAME)

    monkeypatch.setattr(determinism, "_compare", scripted)
    found = find_random_stages(written)
    assert sorted(s.id for s in found) == ["map-0", "source-0"]
    assert "random" not in written.knobs
    assert seen["map-0"] == determinism.ELEMENTS * 4, "a batch's input is compared 4x as long"


def test_a_prefix_that_cannot_run_gives_no_evidence_and_raises_nothing():
    broken = WrittenStage(id="map-0", kind="map", op="Map", dataset=object())
    assert find_random_stages(broken) == []
    assert "random" not in broken.knobs


def test_no_time_left_means_nothing_is_run_or_marked():
    written = read_written(images().map(jitter), lambda obj: None)
    for stage in written.walk():
        stage.knobs.pop("random", None)
    assert find_random_stages(written, budget_s=0.0) == []
