"""An image-classification training script with a tf.data input pipeline.

It builds a small set of synthetic JPEG photos on first use (in
``examples/.data/``), then trains a small Keras model on them from a typical
tf.data pipeline: list files, read and decode, resize, augment, batch,
prefetch. Run it plain (``python examples/tf_images.py``) or under plumber
(``plumber profile examples/tf_images.py -- --epochs 5``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf

DATA_ROOT = Path(__file__).resolve().parent / ".data"
IMAGE_SIDE = 384
TRAIN_SIDE = 128


def make_images(count: int, directory: Path) -> Path:
    """Write ``count`` synthetic JPEGs (two classes) once; reuse them afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(directory.glob("*.jpg"))
    if len(existing) >= count:
        return directory
    print(f"writing {count - len(existing)} example images to {directory}", flush=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE]
    for i in range(len(existing), count):
        label = i % 2
        freq = rng.uniform(0.02, 0.08) * (1 + label)
        base = np.sin(xx * freq + rng.uniform(0, 6)) + np.cos(yy * freq * 0.7)
        noise = rng.normal(0, 0.3, (IMAGE_SIDE, IMAGE_SIDE, 3))
        pixels = ((base[..., None] + noise) * 60 + 128).clip(0, 255).astype(np.uint8)
        jpeg = tf.io.encode_jpeg(pixels, quality=90)
        tf.io.write_file(str(directory / f"img{i:05d}_c{label}.jpg"), jpeg)
    return directory


def load_example(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Read, decode and resize one image; its label is in the file name."""
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    image = tf.image.resize(image, (TRAIN_SIDE, TRAIN_SIDE)) / 255.0
    label = tf.strings.to_number(
        tf.strings.substr(tf.strings.split(path, "_c")[-1], 0, 1), out_type=tf.int32
    )
    return image, label


def augment(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, 0.1)
    return image, label


def build_dataset(directory: Path, batch_size: int) -> tf.data.Dataset:
    files = tf.data.Dataset.list_files(str(directory / "*.jpg"), shuffle=True, seed=0)
    dataset = files.map(load_example)
    dataset = dataset.map(augment)
    dataset = dataset.batch(batch_size)
    return dataset.prefetch(1)


def build_model() -> tf.keras.Model:
    model = tf.keras.Sequential([
        tf.keras.Input((TRAIN_SIDE, TRAIN_SIDE, 3)),
        tf.keras.layers.Conv2D(8, 3, strides=4, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(2),
    ])
    model.compile(
        optimizer="adam",
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the images go (default: examples/.data/images-COUNT)")
    args = parser.parse_args()
    directory = make_images(args.images, args.data_dir or DATA_ROOT / f"images-{args.images}")
    dataset = build_dataset(directory, args.batch_size)
    model = build_model()
    model.fit(dataset, epochs=args.epochs, verbose=2)


if __name__ == "__main__":
    main()
