"""Tuning workload: 4 epochs of a heavy deterministic decode then a random flip.

Caching after the decode (never after the flip) removes the decode from the
second epoch on.
"""

import time

import tensorflow as tf


def decode(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 150, body, (0, tf.ones([256])))
    value = tf.cast(x, tf.float32) + acc[0] * 0.0
    return tf.stack([value, value + 1.0])


def random_flip(pair):
    return tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.reverse(pair, [0]), lambda: pair)


dataset = tf.data.Dataset.range(400)
dataset = dataset.map(decode, num_parallel_calls=1)
dataset = dataset.map(random_flip)
dataset = dataset.batch(8)

start, elements = time.perf_counter(), 0
for _epoch in range(4):
    for batch in dataset:
        elements += int(batch.shape[0])
print(f"THROUGHPUT {elements / (time.perf_counter() - start):.3f}")
