"""A multi-epoch JPEG pipeline iterated by a plain Python epoch loop (a fresh iterator per epoch).

The images are JPEG bytes, either one file each (``--source files``:
``from_tensor_slices`` of their paths, a size TF knows) or records of a
TFRecord file (``--source tfrecord``: a size TF does not know). Each is
decoded and resized (deterministic, the CPU-heavy part), then batched and
prefetched. ``--break-after N`` leaves every epoch after N batches, as a loop
with a step limit per epoch does. Prints a checksum of every element read.
"""

import argparse
import os
import tempfile

import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--images", type=int, default=160)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--source", choices=["files", "tfrecord"], default="tfrecord")
parser.add_argument("--break-after", type=int, default=None)
parser.add_argument("--data", default=None, help="folder for the images (default: a new one)")
args = parser.parse_args()


def write_images(folder, count):
    """JPEG bytes of ``count`` random 128 px images, as files and as one TFRecord file."""
    rng = np.random.default_rng(0)
    paths = []
    with tf.io.TFRecordWriter(os.path.join(folder, "images.tfrecord")) as records:
        for i in range(count):
            pixels = rng.integers(0, 255, size=(128, 128, 3), dtype=np.uint8)
            data = tf.io.encode_jpeg(pixels).numpy()
            path = os.path.join(folder, f"{i:05d}.jpg")
            with open(path, "wb") as f:
                f.write(data)
            records.write(data)
            paths.append(path)
    return paths


def decode(data):
    image = tf.io.decode_jpeg(data, channels=3)
    return tf.image.resize(image, [96, 96]) / 255.0


folder = args.data or tempfile.mkdtemp(prefix="plumber-jpeg-epochs-")
os.makedirs(folder, exist_ok=True)
paths = write_images(folder, args.images)

if args.source == "files":
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(lambda path: decode(tf.io.read_file(path)))
else:
    dataset = tf.data.TFRecordDataset(os.path.join(folder, "images.tfrecord"))
    dataset = dataset.map(decode)
dataset = dataset.batch(16)
dataset = dataset.prefetch(tf.data.AUTOTUNE)

checksum = 0.0
for _epoch in range(args.epochs):
    for step, batch in enumerate(dataset, 1):
        checksum += float(tf.reduce_sum(batch))
        if step == args.break_after:
            break
print(f"checksum {checksum:.2f}")
