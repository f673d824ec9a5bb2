"""Planted bottleneck: an expensive map held to one call at a time.

The map burns CPU in many small TF ops (single-threaded each) and is written
with ``num_parallel_calls=1``, so one core does all the work while the
others idle. Everything else is cheap; the training step is trivial.
"""

import argparse

import tensorflow as tf


def expensive(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 400, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


parser = argparse.ArgumentParser()
parser.add_argument("--elements", type=int, default=1200)
args = parser.parse_args()

dataset = tf.data.Dataset.range(args.elements)
dataset = dataset.map(expensive, num_parallel_calls=1)
dataset = dataset.batch(16)
dataset = dataset.prefetch(2)

total = 0.0
for batch in dataset:
    total += float(tf.reduce_sum(batch))
print("done", total)
