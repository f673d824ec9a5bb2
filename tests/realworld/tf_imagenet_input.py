"""ImageNet-style TFRecord input function, trained by a small Keras model.

Adapted in shape from the TensorFlow Model Garden's ResNet ImageNet input
(tensorflow/models, ``official/legacy/image_classification/resnet/
imagenet_preprocessing.py``): TFRecord shards of JPEG bytes and labels,
read by an interleave of ``TFRecordDataset`` over ``list_files``, shuffled,
parsed and decoded with a random crop from ``sample_distorted_bounding_box``,
a random left-right flip and a resize in one AUTOTUNE map, batched,
prefetched and given options with determinism off. Our own code on
synthetic shards; the images are larger than the crop, so the decode in the
map is the planted bottleneck.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from synthetic_images import data_folder, jpeg_bytes

CLASSES = 4


def write_shards(folder: Path, shards: int, per_shard: int, size: int) -> str:
    """``train-0000K-of-N`` TFRecord files of (encoded JPEG, label) Examples; kept if present."""
    pattern = str(folder / "train-*")
    if len(tf.io.gfile.glob(pattern)) == shards:
        return pattern
    rng = np.random.default_rng(0)
    for shard in range(shards):
        with tf.io.TFRecordWriter(str(folder / f"train-{shard:05d}-of-{shards:05d}")) as out:
            for index in range(per_shard):
                label = (shard * per_shard + index) % CLASSES
                features = {
                    "image/encoded": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[jpeg_bytes(rng, size, label)])),
                    "image/class/label": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[label])),
                }
                out.write(tf.train.Example(
                    features=tf.train.Features(feature=features)).SerializeToString())
    return pattern


def parse_example(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The encoded JPEG and its label from one serialized Example."""
    parsed = tf.io.parse_single_example(serialized, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    return parsed["image/encoded"], parsed["image/class/label"]


def decode_crop_and_flip(encoded: tf.Tensor) -> tf.Tensor:
    """A random crop covering 8-100% of the image, decoded only there, then a random flip."""
    shape = tf.io.extract_jpeg_shape(encoded)
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=whole, min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    offset_y, offset_x, _ = tf.unstack(begin)
    height, width, _ = tf.unstack(crop_size)
    window = tf.stack([offset_y, offset_x, height, width])
    image = tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
    return tf.image.random_flip_left_right(image)


def make_parser(crop: int):
    def parse_record(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        encoded, label = parse_example(serialized)
        image = decode_crop_and_flip(encoded)
        image = tf.image.resize(image, [crop, crop]) / 255.0
        return image, label

    return parse_record


def input_fn(pattern: str, batch_size: int, crop: int) -> tf.data.Dataset:
    files = tf.data.Dataset.list_files(pattern, shuffle=True, seed=None)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                               num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.shuffle(buffer_size=256)  # random stage
    dataset = dataset.map(  # random stage, planted bottleneck
        make_parser(crop), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.prefetch(buffer_size=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = False
    options.experimental_slack = True
    return dataset.with_options(options)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--per-shard", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    pattern = write_shards(data_folder(args.data_dir, "imagenet"), args.shards,
                           args.per_shard, args.image_size)
    dataset = input_fn(pattern, args.batch_size, args.crop)
    model = tf.keras.Sequential([
        tf.keras.Input((args.crop, args.crop, 3)),
        tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(CLASSES),
    ])
    model.compile(optimizer="sgd",
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    history = model.fit(dataset, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    print(f"epochs {len(history.history['loss'])} loss {history.history['loss'][-1]:.3f}")
    batches = args.epochs * (args.shards * args.per_shard // args.batch_size)  # drop_remainder
    print(f"THROUGHPUT {batches / seconds:.3f}")  # batches/s over the whole fit


if __name__ == "__main__":
    main()
