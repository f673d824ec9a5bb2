"""One host of a data-parallel job: a CPU-heavy map whose cost is an argument.

Two runs with different ``--rounds`` stand for two hosts of one job where
one host's map is slower (a slower CPU, a heavier shard of the data): the
same pipeline, built at the same lines, with a planted difference in the
map's time per element.
"""

import argparse

import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--elements", type=int, default=320)
parser.add_argument("--rounds", type=int, default=200)
args = parser.parse_args()


def expensive(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < args.rounds, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


dataset = tf.data.Dataset.range(args.elements)
dataset = dataset.map(expensive, num_parallel_calls=1)
dataset = dataset.batch(8)
dataset = dataset.prefetch(2)

total = 0.0
for batch in dataset:
    total += float(tf.reduce_sum(batch))
print("done", total)
