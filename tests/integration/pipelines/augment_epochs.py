"""A multi-epoch pipeline where caching matters and must go before a random op.

Decoding (deterministic, CPU-heavy, one call at a time) is followed by a
random augmentation (a random flip of each pair). Three epochs: from the
second on, a cache after the decode would skip it, but a cache after the
flip would freeze the randomness, so only the first placement is allowed.
Prints a checksum of every element's sorted pair, which the flip preserves.
"""

import argparse

import tensorflow as tf


def decode(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 200, body, (0, tf.ones([256])))
    value = tf.cast(x, tf.float32) + acc[0] * 0.0
    return tf.stack([value, value * 2.0 + 1.0])


def random_flip(pair):
    return tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.reverse(pair, [0]), lambda: pair)


parser = argparse.ArgumentParser()
parser.add_argument("--elements", type=int, default=400)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

dataset = tf.data.Dataset.range(args.elements)
dataset = dataset.map(decode, num_parallel_calls=1)
dataset = dataset.map(random_flip)
dataset = dataset.batch(8)

checksum = 0.0
for _epoch in range(args.epochs):
    for batch in dataset:
        checksum += float(tf.reduce_sum(tf.sort(batch, axis=1) * [1.0, 3.0]))
print(f"checksum {checksum:.1f}")
