"""Image classification from scratch with Keras, on JPEG folders per class.

Adapted in shape from the keras-io example "Image classification from
scratch" (keras-team/keras-io, ``examples/vision/image_classification_
from_scratch.py``): ``image_dataset_from_directory`` with a validation split,
a ``Sequential`` of random flip and rotation layers applied in a
``train_ds.map(..., training=True)``, prefetch, and ``model.fit`` with
validation data. Our own code on synthetic folders; the JPEG files are much
larger than ``image_size``, so the decode inside Keras's
``image_dataset_from_directory`` is the planted bottleneck.
"""

from __future__ import annotations

import argparse
import time

import keras
import tensorflow as tf
from keras import layers
from synthetic_images import data_folder, write_class_folders


class TrainingClock(keras.callbacks.Callback):
    """Training batches and the seconds from asking for each to its step's end (no validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches, self.seconds, self._start = 0, 0.0, 0.0

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.seconds += time.perf_counter() - self._start
        self.batches += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=80)
    parser.add_argument("--file-size", type=int, default=320)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    root = write_class_folders(data_folder(args.data_dir, "keras-images"), classes=2,
                               per_class=args.per_class, size=args.file_size)
    image_size = (args.image_size, args.image_size)
    train_ds, val_ds = keras.utils.image_dataset_from_directory(  # planted bottleneck
        root, validation_split=0.2, subset="both", seed=1337,
        image_size=image_size, batch_size=args.batch_size)

    data_augmentation = keras.Sequential([
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
    ])
    train_ds = train_ds.map(lambda x, y: (data_augmentation(x, training=True), y),  # random stage
                            num_parallel_calls=tf.data.AUTOTUNE)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = val_ds.prefetch(tf.data.AUTOTUNE)

    model = keras.Sequential([
        keras.Input(image_size + (3,)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(8, 3, strides=2, activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    clock = TrainingClock()
    history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds, verbose=0,
                        callbacks=[clock])
    print(f"epochs {len(history.history['loss'])} val_loss {history.history['val_loss'][-1]:.3f}")
    print(f"THROUGHPUT {clock.batches / clock.seconds:.3f}")  # training batches/s


if __name__ == "__main__":
    main()
