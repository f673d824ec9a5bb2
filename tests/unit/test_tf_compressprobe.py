"""How a stage's elements compress as tf.data service sends them (plumber/tf/compressprobe.py).

Real tf.data pipelines, their elements read by the per-stage CPU probe:
elements that repeat compress far below their size, random bytes do not,
and strings and tuples are sized by what they hold; a prefix that fails or
yields nothing is left out.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from plumber.tf.compressprobe import ELEMENTS, CompressionSampler  # noqa: E402
from plumber.tf.cpuprobe import measure_prefixes  # noqa: E402
from plumber.tf.written import read_written  # noqa: E402


def sampled(dataset, budget_s: float = 2.0):
    stages = read_written(dataset, lambda obj: None).walk()
    sampler = CompressionSampler({s.id for s in stages})
    measure_prefixes(stages, budget_s, sampler, keep=ELEMENTS)
    return sampler.samples, {s.kind: s.id for s in stages}


def test_repeating_elements_compress_and_random_ones_do_not():
    zeros = tf.data.Dataset.from_tensors(tf.zeros([64, 64, 3], tf.uint8)).repeat(8)
    noise = tf.data.Dataset.from_tensor_slices(
        np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8))
    for dataset, most, least in [(zeros, 0.1, 0.0), (noise, 1.1, 0.95)]:
        samples, ids = sampled(dataset.map(lambda x: x))
        sample = samples[ids["map"]]
        assert sample.elements == ELEMENTS
        assert sample.raw_bytes == ELEMENTS * 64 * 64 * 3
        assert least <= sample.compressed_bytes / sample.raw_bytes <= most
        assert sample.compress_cpu_s >= 0 and sample.uncompress_cpu_s >= 0


def test_strings_and_tuples_are_sized_by_what_they_hold():
    words = tf.data.Dataset.from_tensor_slices((["abc", "defgh"] * 4, list(range(8))))
    samples, ids = sampled(words.map(lambda w, i: (w, tf.cast(i, tf.int32))))
    # Four elements: two of "abc" and two of "defgh" (16 bytes), and four int32 (16 bytes).
    assert samples[ids["map"]].raw_bytes == 16 + 16


def test_a_failing_or_empty_prefix_is_left_out():
    failing = tf.data.Dataset.range(4).map(
        lambda x: tf.debugging.assert_less(x, tf.constant(-1, tf.int64)) and x)
    empty = tf.data.Dataset.range(0).map(lambda x: x + 1)
    for dataset in (failing, empty):
        samples, ids = sampled(dataset)
        assert ids["map"] not in samples


def test_no_budget_samples_nothing():
    assert sampled(tf.data.Dataset.range(8).map(lambda x: x), budget_s=0.0)[0] == {}
