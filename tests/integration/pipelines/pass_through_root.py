"""A CPU-heavy map under a pass-through root, as the TF models code ends its pipelines.

``--root`` picks what the consumer iterates: ``options`` ends the pipeline
with ``with_options`` (``experimental_deterministic = False``), ``take`` with
``take(n)``, ``assert`` with ``apply(assert_cardinality(n))``. None of them
changes the elements; each must leave the stages below it measured.
"""

import argparse

import tensorflow as tf


def expensive(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 300, body, (0, tf.ones([256])))
    return tf.cast(x, tf.float32) + acc[0] * 0.0


parser = argparse.ArgumentParser()
parser.add_argument("--root", choices=["options", "take", "assert"], default="options")
parser.add_argument("--elements", type=int, default=480)
args = parser.parse_args()

batches = args.elements // 16
dataset = tf.data.Dataset.range(args.elements)
dataset = dataset.map(expensive, num_parallel_calls=tf.data.AUTOTUNE)
dataset = dataset.batch(16)
dataset = dataset.prefetch(tf.data.AUTOTUNE)
if args.root == "options":
    options = tf.data.Options()
    options.experimental_deterministic = False
    dataset = dataset.with_options(options)
elif args.root == "take":
    dataset = dataset.take(batches - 2)
else:
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))

total = 0.0
for batch in dataset:
    total += float(tf.reduce_sum(batch))
print("done", total)
