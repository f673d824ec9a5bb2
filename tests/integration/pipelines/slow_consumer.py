"""Planted bottleneck: the training step is slower than the input pipeline.

The pipeline is cheap; each step of the loop does ~15 ms of work, so the
consumer, not the input pipeline, limits throughput.
"""

import argparse
import time

import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=150)
args = parser.parse_args()

dataset = tf.data.Dataset.range(args.steps * 32)
dataset = dataset.map(lambda x: tf.cast(x, tf.float32) * 2.0, num_parallel_calls=tf.data.AUTOTUNE)
dataset = dataset.batch(32)
dataset = dataset.prefetch(tf.data.AUTOTUNE)


def train_step(batch):
    deadline = time.perf_counter() + 0.015
    while time.perf_counter() < deadline:
        pass
    return float(tf.reduce_sum(batch))


for batch in dataset:
    train_step(batch)
print("trained")
