"""Keras ``model.fit(dataset, epochs=E)`` over a JPEG pipeline: Keras makes the iterators.

The JPEG bytes come from a TFRecord file (``--source tfrecord``, a size TF
does not know: Keras reads each epoch until the data runs out) or from one
file per image (``--source files``: Keras stops each epoch at the known
number of batches). Each image is decoded and resized (deterministic), then
batched and prefetched; a tiny dense model trains on it.
"""

import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--images", type=int, default=160)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--source", choices=["files", "tfrecord"], default="tfrecord")
parser.add_argument("--data", default=None, help="folder for the images (default: a new one)")
args = parser.parse_args()

folder = args.data or tempfile.mkdtemp(prefix="plumber-keras-epochs-")
os.makedirs(folder, exist_ok=True)
rng = np.random.default_rng(0)
paths = []
with tf.io.TFRecordWriter(os.path.join(folder, "images.tfrecord")) as records:
    for i in range(args.images):
        data = tf.io.encode_jpeg(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).numpy()
        paths.append(os.path.join(folder, f"{i:05d}.jpg"))
        with open(paths[-1], "wb") as f:
            f.write(data)
        records.write(data)


def decode(data):
    image = tf.image.resize(tf.io.decode_jpeg(data, channels=3), [32, 32]) / 255.0
    return image, tf.reduce_mean(image)


if args.source == "files":
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(lambda path: decode(tf.io.read_file(path)))
else:
    dataset = tf.data.TFRecordDataset(os.path.join(folder, "images.tfrecord"))
    dataset = dataset.map(decode)
dataset = dataset.batch(16)
dataset = dataset.prefetch(tf.data.AUTOTUNE)

model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
model.compile("sgd", "mse")
model.fit(dataset, epochs=args.epochs, verbose=0)
print("trained")
