"""Planted bottleneck: a slow sequential read.

Each record is read from a file by a reader that waits ~4 ms per request
(like remote or throttled storage) and uses little CPU; the reads are made
one at a time. Decoding and the consumer are cheap.
"""

import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--records", type=int, default=600)
args = parser.parse_args()

path = os.path.join(tempfile.mkdtemp(prefix="plumber-slow-read-"), "records.bin")
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


dataset = tf.data.Dataset.range(args.records)
dataset = dataset.map(fetch)
dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
dataset = dataset.batch(8)
dataset = dataset.prefetch(tf.data.AUTOTUNE)

count = 0
for batch in dataset:
    count += int(batch.shape[0])
print("records", count)
