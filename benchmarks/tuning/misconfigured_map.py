"""Tuning workload: a CPU-heavy map written with one call at a time, no prefetch."""

import time

import tensorflow as tf


def decode(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 150, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


dataset = tf.data.Dataset.range(1200)
dataset = dataset.map(decode, num_parallel_calls=1)
dataset = dataset.batch(16)

start, elements = time.perf_counter(), 0
for batch in dataset:
    elements += int(batch.shape[0])
print(f"THROUGHPUT {elements / (time.perf_counter() - start):.3f}")
