"""A multi-epoch pipeline whose augmentation is written the ways public code writes it.

A deterministic, CPU-heavy decode (one call at a time) feeds an augmentation
chosen by ``--augment``:

* ``keras``: a ``keras.Sequential`` of ``RandomFlip`` and ``RandomRotation``
  called in a map, as keras-io's "image classification from scratch" does;
* ``numpy``: a ``tf.py_function`` whose Python body adds ``np.random`` noise;
* ``none``: no augmentation (the decode alone, then a deterministic resize).

Three epochs: from the second on, a cache after the decode would skip it; a
cache after the augmentation would replay one epoch's randomness.
"""

import argparse

import numpy as np
import tensorflow as tf


def decode(x):
    def body(i, acc):
        return i + 1, acc + tf.reduce_sum(tf.sin(acc[:64] + tf.cast(i, tf.float32)))

    _, acc = tf.while_loop(lambda i, acc: i < 200, body, (0, tf.ones([256])))
    value = tf.cast(x, tf.float32) + acc[0] * 0.0
    return tf.fill([8, 8, 3], value) + tf.reshape(tf.range(192, dtype=tf.float32), [8, 8, 3])


def numpy_noise(image):
    return (image + np.random.uniform(-1.0, 1.0, size=image.shape)).astype(np.float32)


def augmentation(kind):
    if kind == "keras":
        import keras

        layers = keras.Sequential([
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.1),
        ])
        return lambda image: layers(image)
    if kind == "numpy":
        def noisy(image):
            out = tf.py_function(lambda x: numpy_noise(x.numpy()), [image], tf.float32)
            return tf.ensure_shape(out, [8, 8, 3])
        return noisy
    return lambda image: tf.image.resize(image, [6, 6])


parser = argparse.ArgumentParser()
parser.add_argument("--augment", choices=["keras", "numpy", "none"], default="keras")
parser.add_argument("--elements", type=int, default=300)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

augment = augmentation(args.augment)
dataset = tf.data.Dataset.range(args.elements)
dataset = dataset.map(decode, num_parallel_calls=1)
dataset = dataset.map(augment)
dataset = dataset.batch(8)

total = 0.0
for _epoch in range(args.epochs):
    for batch in dataset:
        total += float(tf.reduce_sum(batch))
print("done", total)
