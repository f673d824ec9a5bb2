"""A script that reads from a tf.data service and maps what it reads here, one call at a time.

Its argument is the service's address. The map after the read is CPU-bound
at parallelism 1 with a core to spare, so ``plumber tune`` plans more calls
for it and measures the plan in further runs; each read is printed, so a
test can take the service away while one of those runs reads from it.
"""

import sys

import tensorflow as tf


def heavy(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 400, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


dataset = tf.data.Dataset.range(100_000).apply(tf.data.experimental.service.distribute(
    processing_mode="distributed_epoch", service=sys.argv[1]))
dataset = dataset.map(heavy, num_parallel_calls=1)
for read, _ in enumerate(dataset, 1):
    print(f"read {read}", flush=True)
