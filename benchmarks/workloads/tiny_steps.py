"""Benchmark workload: many tiny steps, the worst case for per-step overhead."""

import time

import tensorflow as tf

dataset = tf.data.Dataset.range(100_000).map(lambda x: x + 1).batch(2).prefetch(8)
start, elements = time.perf_counter(), 0
for batch in dataset:
    elements += int(batch.shape[0])
print(f"THROUGHPUT {elements / (time.perf_counter() - start):.3f}")
