"""A script that reads from a tf.data service itself (its own ``distribute``), slowly.

Its argument is the service's address. It reads one element every 20 ms for
up to a minute and prints how many it has read, so a test can take the
service away while ``plumber profile`` runs it.
"""

import sys
import time

import tensorflow as tf

dataset = tf.data.Dataset.range(3000).map(lambda x: x * 3)
dataset = dataset.apply(tf.data.experimental.service.distribute(
    processing_mode="distributed_epoch", service=sys.argv[1]))
for read, _ in enumerate(dataset, 1):
    print(f"read {read}", flush=True)
    time.sleep(0.02)
