"""Tuning workload: records fetched one at a time from storage that answers in ~4 ms."""

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

path = os.path.join(tempfile.mkdtemp(prefix="plumber-bench-read-"), "records.bin")
RECORD = 4096
with open(path, "wb") as f:
    f.write(np.random.default_rng(0).bytes(RECORD * 64))


def read_record(index):
    time.sleep(0.004)
    with open(path, "rb") as f:
        f.seek((int(index) % 64) * RECORD)
        return f.read(RECORD)


def fetch(index):
    return tf.py_function(read_record, [index], tf.string)


def decode(raw):
    return tf.reduce_mean(tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.float32))


dataset = tf.data.Dataset.range(800)
dataset = dataset.map(fetch)
dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
dataset = dataset.batch(8)
dataset = dataset.prefetch(tf.data.AUTOTUNE)

start, elements = time.perf_counter(), 0
for batch in dataset:
    elements += int(batch.shape[0])
print(f"THROUGHPUT {elements / (time.perf_counter() - start):.3f}")
