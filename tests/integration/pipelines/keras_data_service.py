"""Keras ``fit`` over a tf.data pipeline whose map (the line marked "the cut") may be offloaded.

Prints the batches each epoch trained on, as JSON: with the cut on
tf.data service workers in ``distributed_epoch`` they must be those of
the pipeline as written (256 elements in batches of 32: 8 per epoch).
"""

import json

import numpy as np
import tensorflow as tf

features = np.arange(256 * 8, dtype="float32").reshape(256, 8)
labels = np.ones((256, 1), dtype="float32")
dataset = tf.data.Dataset.from_tensor_slices((features, labels))
dataset = dataset.map(lambda x, y: (x / 2048.0, y))  # the cut
dataset = dataset.batch(32)


class CountBatches(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        print(json.dumps({"epoch": epoch, "batches": self.batches}), flush=True)


model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(1)])
model.compile("sgd", "mse")
model.fit(dataset, epochs=2, verbose=0, callbacks=[CountBatches()])
