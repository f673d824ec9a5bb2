"""A custom training loop over epochs on a deterministic JPEG pipeline built once.

Adapted in shape from the TensorFlow guide "Writing a training loop from
scratch" (tensorflow/docs, ``site/en/guide/keras/writing_a_training_loop_
from_scratch.ipynb``): a ``tf.function`` train step with a ``GradientTape``,
called from ``for epoch in range(E): for x, y in dataset:``, so every epoch
makes a fresh iterator over the same dataset. The input reads JPEG files
listed in order, decodes and resizes them (deterministic, so cacheable),
batches and prefetches. Our own code on synthetic files; the files are much
larger than the training size, so the decode is the planted bottleneck.
"""

from __future__ import annotations

import argparse
import time

import tensorflow as tf
from synthetic_images import data_folder, write_class_folders


def load(path: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The image at ``path`` decoded and resized, and its class from the folder name."""
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    image = tf.image.resize(image, [size, size]) / 255.0
    folder = tf.strings.split(path, "/")[-2]
    label = tf.strings.to_number(tf.strings.split(folder, "_")[-1], out_type=tf.int32)
    return image, label


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--file-size", type=int, default=320)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    root = write_class_folders(data_folder(args.data_dir, "epoch-loop"), classes=2,
                               per_class=args.per_class, size=args.file_size)
    paths = sorted(str(p) for p in root.glob("class_*/*.jpg"))
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(lambda p: load(p, args.image_size))  # planted bottleneck
    dataset = dataset.batch(args.batch_size)
    dataset = dataset.prefetch(1)

    model = tf.keras.Sequential([
        tf.keras.Input((args.image_size, args.image_size, 3)),
        tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(2),
    ])
    optimizer = tf.keras.optimizers.SGD(0.05)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights),
                                      model.trainable_weights, strict=True))
        return loss

    start, batches = time.perf_counter(), 0
    for epoch in range(args.epochs):
        total = 0.0
        for x, y in dataset:
            total += float(train_step(x, y))
            batches += 1
        print(f"epoch {epoch} loss {total:.3f}")
    print(f"THROUGHPUT {batches / (time.perf_counter() - start):.3f}")  # batches/s, all epochs


if __name__ == "__main__":
    main()
