"""Keras ``fit`` over a tf.data pipeline whose map (the line marked "the cut") may be offloaded.

Prints, as JSON at the end of each epoch, the batches it trained on and the
count, sum and sum of squares of the element ids in them: with the cut on
tf.data service workers in ``distributed_epoch`` they must be those of the
pipeline as written (256 elements in batches of 32: 8 per epoch). With
``--slow`` it trains for one long epoch, printing ``read N`` after each
batch and taking 20 ms more per batch, so a test can take the service away
mid-run.
"""

import json
import sys
import time

import tensorflow as tf

slow = "--slow" in sys.argv
dataset = tf.data.Dataset.range(3_200_000 if slow else 256)
dataset = dataset.map(lambda i: (tf.fill([8], tf.cast(i, tf.float32)), tf.ones([1])))  # the cut
dataset = dataset.batch(32)


class Recording(tf.keras.Sequential):
    """Adds to each step's logs the count, sum and sum of squares of the ids it trained on."""

    def train_step(self, data):
        logs = super().train_step(data)
        ids = data[0][:, 0]
        return {**logs, "elements": tf.cast(tf.size(ids), tf.float32),
                "total": tf.reduce_sum(ids), "squares": tf.reduce_sum(ids * ids)}


class CountBatches(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.seen = {"batches": 0, "elements": 0, "total": 0, "squares": 0}

    def on_train_batch_end(self, batch, logs=None):
        self.seen["batches"] += 1
        for key in ("elements", "total", "squares"):
            self.seen[key] += int(logs[key])
        if slow:
            print(f"read {self.seen['batches']}", flush=True)
            time.sleep(0.02)

    def on_epoch_end(self, epoch, logs=None):
        print(json.dumps({"epoch": epoch, **self.seen}), flush=True)


model = Recording([tf.keras.Input((8,)), tf.keras.layers.Dense(1)])
model.compile("sgd", "mse")
model.fit(dataset, epochs=1 if slow else 2, verbose=0, callbacks=[CountBatches()])
