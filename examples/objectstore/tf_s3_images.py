"""Train a small Keras model on images read from S3 inside a tf.data pipeline.

By default it starts its own S3 server on loopback (``server.py``, in a child
process) with 20 ms of latency per request, uploads a synthetic dataset
(``upload.py``) and trains for a few steps. The pipeline is written the way a
first version usually is: object keys -> ``map`` that fetches each object with
boto3 through ``tf.py_function`` -> decode -> batch, with no
``num_parallel_calls``. A ``py_function`` is stateful, so TensorFlow does not
parallelise that map itself: one request at a time, latency-bound.
``--source shards`` streams the same images from a few tar shards.

    python examples/objectstore/tf_s3_images.py
    python examples/objectstore/tf_s3_images.py --latency 50ms --steps 5
    python examples/objectstore/tf_s3_images.py --endpoint http://127.0.0.1:9000

Faults to try: ``--server-stop-after 100`` (the server goes away mid-run),
``--missing-keys`` (NoSuchKey).
"""

from __future__ import annotations

import argparse
import atexit
import sys
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import boto3
import tensorflow as tf
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from server import S3ServerProcess, parse_bandwidth, parse_duration
from upload import DEFAULT_BUCKET, upload_dataset, use_test_credentials

IMAGE_SIDE = 64
# Fail within seconds when the server is gone instead of retrying for minutes.
CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3}
)


def read_object(client: Any, bucket: str, key: str) -> bytes:
    """GET one object; errors name the object, not just the S3 error code."""
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response["Error"]["Code"] == "NoSuchKey":
            raise FileNotFoundError(f"s3://{bucket}/{key} does not exist (NoSuchKey)") from err
        raise OSError(f"could not read s3://{bucket}/{key}: {err}") from err
    except BotoCoreError as err:
        raise OSError(f"could not read s3://{bucket}/{key}: {err}") from err


def decode(jpeg: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_jpeg(jpeg, channels=3)
    image = tf.image.resize(image, (IMAGE_SIDE, IMAGE_SIDE)) / 255.0
    return tf.image.random_flip_left_right(image)


def objects_dataset(client: Any, bucket: str, items: list[tuple[str, int]]) -> tf.data.Dataset:
    """One object per sample, fetched and decoded inside the pipeline."""

    def fetch(key: tf.Tensor) -> bytes:
        return read_object(client, bucket, key.numpy().decode())

    def load_example(key: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return decode(tf.py_function(fetch, [key], tf.string)), label

    keys, labels = zip(*items, strict=True)
    dataset = tf.data.Dataset.from_tensor_slices((list(keys), list(labels)))
    dataset = dataset.shuffle(len(items), seed=0)
    return dataset.map(load_example)


def shards_dataset(client: Any, bucket: str, shard_keys: list[str]) -> tf.data.Dataset:
    """The same samples streamed from tar shards (``00000.jpg`` + ``00000.cls`` pairs)."""

    def samples(key: bytes) -> Iterator[tuple[bytes, int]]:
        name = key.decode()
        try:
            body = client.get_object(Bucket=bucket, Key=name)["Body"]
            with tarfile.open(fileobj=body, mode="r|") as tar:  # a stream, not a download
                jpeg = None
                for member in tar:
                    data = tar.extractfile(member).read()
                    if member.name.endswith(".jpg"):
                        jpeg = data
                    elif member.name.endswith(".cls") and jpeg is not None:
                        yield jpeg, int(data)
        except (ClientError, BotoCoreError) as err:
            raise OSError(f"could not read s3://{bucket}/{name}: {err}") from err

    signature = (tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int32))
    shards = tf.data.Dataset.from_tensor_slices(shard_keys)
    dataset = shards.interleave(
        lambda key: tf.data.Dataset.from_generator(samples, args=(key,),
                                                   output_signature=signature))
    dataset = dataset.shuffle(256, seed=0)
    return dataset.map(lambda jpeg, label: (decode(jpeg), label))


def build_dataset(args: argparse.Namespace, client: Any, manifest: dict[str, Any]
                  ) -> tf.data.Dataset:
    if args.source == "shards":
        dataset = shards_dataset(client, args.bucket, manifest["shards"])
    else:
        items = [(entry["key"], entry["label"]) for entry in manifest["images"]]
        if args.missing_keys:
            # As if objects had been deleted after the manifest was written: 1 in 16 is gone.
            items = [(key.replace("images/", "images/deleted-") if i % 16 == 0 else key, label)
                     for i, (key, label) in enumerate(items)]
        dataset = objects_dataset(client, args.bucket, items)
    return dataset.batch(args.batch_size).repeat()


def train(dataset: tf.data.Dataset, steps: int) -> None:
    model = tf.keras.Sequential([
        tf.keras.Input((IMAGE_SIDE, IMAGE_SIDE, 3)),
        tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(2),
    ])
    model.compile(optimizer="adam",
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start, seen = time.perf_counter(), 0
    for step, (images, labels) in enumerate(dataset.take(steps), start=1):
        loss = model.train_on_batch(images, labels)
        seen += len(labels)
        elapsed = time.perf_counter() - start
        print(f"step {step}/{steps}: loss {float(loss):.3f}, {seen / elapsed:.0f} images/s",
              flush=True)
    elapsed = time.perf_counter() - start
    print(f"done: {steps} steps, {seen} images in {elapsed:.1f} s ({seen / elapsed:.0f} images/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="use this S3 endpoint instead of starting a server")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--source", choices=("objects", "shards"), default="objects",
                        help="one object per sample (default) or tar shards")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=512, help="dataset size to upload")
    server_options = parser.add_argument_group("the server started without --endpoint")
    server_options.add_argument("--latency", type=parse_duration, default=0.02,
                                help="per request, e.g. 5ms or 50ms (default 20ms)")
    server_options.add_argument("--bandwidth", type=parse_bandwidth, default=None,
                                help="e.g. 50MB/s (default unlimited)")
    server_options.add_argument("--server-stop-after", type=int, default=None, metavar="N",
                                help="fault: the server goes away after N GETs")
    parser.add_argument("--missing-keys", action="store_true",
                        help="fault: read objects that do not exist (NoSuchKey)")
    args = parser.parse_args()

    use_test_credentials()
    endpoint_url = args.endpoint
    if endpoint_url is None:
        server = S3ServerProcess(
            latency_s=args.latency, bandwidth_bps=args.bandwidth,
            stop_after_gets=args.server_stop_after,
        ).start()
        # Stopped at exit rather than when training ends: a profiler may re-run the pipeline.
        atexit.register(server.stop)
        endpoint_url = server.endpoint_url
    print(f"S3 endpoint {endpoint_url}; uploading {args.images} images", flush=True)
    manifest = upload_dataset(endpoint_url, args.bucket, images=args.images)
    client = boto3.client("s3", endpoint_url=endpoint_url, config=CLIENT_CONFIG)
    try:
        train(build_dataset(args, client, manifest), args.steps)
    except tf.errors.OpError as err:
        # Exit here, not by an uncaught error: TensorFlow hangs at interpreter exit
        # when a py_function of a live pipeline is still fetching.
        sys.exit(f"error: reading the dataset failed: {err.message}")


if __name__ == "__main__":
    main()
