"""Benchmark workload for benchmarks/data_service.py: a CPU-heavy map a service can take over.

The map (the line marked "the cut") burns CPU in small TF ops; the batch
above it stays with the training loop, which only sums each batch. Prints
``THROUGHPUT`` in elements per second over the whole read.
"""

import sys
import time

import tensorflow as tf

ELEMENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000


def work(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 150, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


dataset = tf.data.Dataset.range(ELEMENTS)
dataset = dataset.map(work, num_parallel_calls=tf.data.AUTOTUNE)  # the cut
dataset = dataset.batch(16)
dataset = dataset.prefetch(tf.data.AUTOTUNE)
start, elements = time.perf_counter(), 0
for batch in dataset:
    elements += int(batch.shape[0])
print(f"THROUGHPUT {elements / (time.perf_counter() - start):.3f}")
