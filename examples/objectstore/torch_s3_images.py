"""Train a small PyTorch model on images read from S3, one object per sample.

By default it starts its own S3 server on loopback (``server.py``, in a child
process) with 20 ms of latency per request, uploads a synthetic dataset
(``upload.py``) and trains for a few steps. The Dataset fetches each sample
with boto3 in ``__getitem__``, as most per-sample S3 loaders do: every sample
pays a round trip, so with ``num_workers=2`` the loader is latency-bound, not
CPU-bound. ``--source shards`` streams the same images from a few tar shards.

    python examples/objectstore/torch_s3_images.py
    python examples/objectstore/torch_s3_images.py --latency 50ms --steps 20
    python examples/objectstore/torch_s3_images.py --endpoint http://127.0.0.1:9000

Faults to try: ``--server-stop-after 100`` (the server goes away mid-run),
``--max-in-flight 1`` (HTTP 503 SlowDown: boto3 retries, the run slows down),
``--missing-keys`` (NoSuchKey).
"""

from __future__ import annotations

import argparse
import atexit
import io
import os
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import boto3
import torch
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image
from server import S3ServerProcess, parse_bandwidth, parse_duration
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info
from torchvision import transforms
from upload import DEFAULT_BUCKET, upload_dataset, use_test_credentials

# Fail within seconds when the server is gone instead of retrying for minutes.
CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3}
)


def make_client(endpoint_url: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint_url, config=CLIENT_CONFIG)


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


class S3ImageDataset(Dataset):
    """One S3 object per sample, fetched and decoded in ``__getitem__``."""

    def __init__(self, endpoint_url: str, bucket: str, items: list[tuple[str, int]],
                 transform: transforms.Compose) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.items = items
        self.transform = transform
        self._client = None
        self._client_pid = 0

    def __len__(self) -> int:
        return len(self.items)

    def client(self) -> Any:
        # boto3 clients are not fork-safe: each DataLoader worker makes its own.
        if self._client is None or self._client_pid != os.getpid():
            self._client, self._client_pid = make_client(self.endpoint_url), os.getpid()
        return self._client

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        key, label = self.items[index]
        data = read_object(self.client(), self.bucket, key)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        return self.transform(image), label


class S3ShardDataset(IterableDataset):
    """The same samples streamed from tar shards (``00000.jpg`` + ``00000.cls`` pairs)."""

    def __init__(self, endpoint_url: str, bucket: str, shard_keys: list[str],
                 transform: transforms.Compose) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.shard_keys = shard_keys
        self.transform = transform

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        worker = get_worker_info()
        mine = self.shard_keys if worker is None else self.shard_keys[worker.id::worker.num_workers]
        client = make_client(self.endpoint_url)
        for key in mine:
            try:
                body = client.get_object(Bucket=self.bucket, Key=key)["Body"]
                with tarfile.open(fileobj=body, mode="r|") as tar:  # a stream, not a download
                    image = None
                    for member in tar:
                        data = tar.extractfile(member).read()
                        if member.name.endswith(".jpg"):
                            image = Image.open(io.BytesIO(data)).convert("RGB")
                        elif member.name.endswith(".cls") and image is not None:
                            yield self.transform(image), int(data)
            except (ClientError, BotoCoreError) as err:
                raise OSError(f"could not read s3://{self.bucket}/{key}: {err}") from err


def build_loader(
    args: argparse.Namespace, endpoint_url: str, manifest: dict[str, Any]
) -> DataLoader:
    transform = transforms.Compose([
        transforms.Resize((64, 64)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    ])
    if args.source == "shards":
        dataset = S3ShardDataset(endpoint_url, args.bucket, manifest["shards"], transform)
        return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)
    items = [(entry["key"], entry["label"]) for entry in manifest["images"]]
    if args.missing_keys:
        # As if objects had been deleted after the manifest was written: 1 in 16 is gone.
        items = [(key.replace("images/", "images/deleted-") if i % 16 == 0 else key, label)
                 for i, (key, label) in enumerate(items)]
    dataset = S3ImageDataset(endpoint_url, args.bucket, items, transform)
    return DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                      num_workers=args.num_workers,
                      generator=torch.Generator().manual_seed(0))  # same order every run


def batches(loader: DataLoader, steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches, starting a new epoch whenever the loader runs out."""
    produced = 0
    while produced < steps:
        for batch in loader:
            yield batch
            produced += 1
            if produced == steps:
                return


def train(loader: DataLoader, steps: int) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    start, seen = time.perf_counter(), 0
    for step, (images, labels) in enumerate(batches(loader, steps), start=1):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        seen += len(labels)
        elapsed = time.perf_counter() - start
        print(f"step {step}/{steps}: loss {loss.item():.3f}, {seen / elapsed:.0f} images/s",
              flush=True)
    elapsed = time.perf_counter() - start
    print(f"done: {steps} steps, {seen} images in {elapsed:.1f} s ({seen / elapsed:.0f} images/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="use this S3 endpoint instead of starting a server")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--source", choices=("objects", "shards"), default="objects",
                        help="one object per sample (default) or tar shards")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=512, help="dataset size to upload")
    server_options = parser.add_argument_group("the server started without --endpoint")
    server_options.add_argument("--latency", type=parse_duration, default=0.02,
                                help="per request, e.g. 5ms or 50ms (default 20ms)")
    server_options.add_argument("--bandwidth", type=parse_bandwidth, default=None,
                                help="e.g. 50MB/s (default unlimited)")
    server_options.add_argument("--max-in-flight", type=int, default=None,
                                help="fault: 503 SlowDown beyond this many requests at once")
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
            max_in_flight=args.max_in_flight, stop_after_gets=args.server_stop_after,
        ).start()
        # Stopped at exit rather than when training ends: a profiler may re-run the pipeline.
        atexit.register(server.stop)
        endpoint_url = server.endpoint_url
    print(f"S3 endpoint {endpoint_url}; uploading {args.images} images", flush=True)
    # Upload under the server's request limit: that fault is for the training reads.
    manifest = upload_dataset(endpoint_url, args.bucket, images=args.images,
                              threads=min(16, args.max_in_flight or 16))
    train(build_loader(args, endpoint_url, manifest), args.steps)


if __name__ == "__main__":
    main()
