"""Planted bottleneck: a script reading from a tf.data service whose one worker is slow.

Its argument is the service's address. The heavy map (many small TF ops,
one call at a time) runs on the service's worker, in another process; the
script itself only uncompresses and prefetches, and its step is trivial,
so it waits on the service. Two epochs as a Python loop.
"""

import sys

import tensorflow as tf


def heavy(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 400, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


dataset = tf.data.Dataset.range(480)
dataset = dataset.map(heavy, num_parallel_calls=1)
dataset = dataset.batch(8)
dataset = dataset.apply(tf.data.experimental.service.distribute(
    processing_mode="distributed_epoch", service=sys.argv[1]))
dataset = dataset.prefetch(2)

total = 0.0
for _epoch in range(2):
    for batch in dataset:
        total += float(tf.reduce_sum(batch))
print("done", total)
