"""Upload a synthetic image dataset to an S3 bucket, as small objects and as large shards.

The same images go up twice, so both ways of reading object storage can be
compared on the same data:

- ``images/00000.jpg`` ...: one small JPEG object per sample (64x64 to 128x128
  pixels, two classes), the layout that makes a per-sample reader latency-bound;
- ``shards/shard-0000.tar`` ...: a few tar archives holding the same samples as
  ``00000.jpg`` + ``00000.cls`` (the WebDataset convention), read as streams;
- ``manifest.json``: the keys, their labels and the shard keys.

Content is deterministic (seeded), and an upload is skipped when the bucket
already holds a manifest for the same dataset. Run it against any endpoint::

    python examples/objectstore/upload.py --endpoint http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import tarfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw

MANIFEST_KEY = "manifest.json"
DEFAULT_BUCKET = "plumber-images"


def use_test_credentials() -> None:
    """Dummy credentials and region unless the environment has real ones (moto takes any)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def make_image(index: int, seed: int) -> tuple[bytes, int]:
    """One JPEG and its label: class 0 draws ellipses, class 1 rectangles."""
    rng = random.Random(seed * 1_000_003 + index)
    label = index % 2
    side = rng.randrange(64, 129)
    image = Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(side // 2), rng.randrange(side // 2)
        box = (x0, y0, x0 + rng.randrange(8, side // 2), y0 + rng.randrange(8, side // 2))
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if label == 0 else draw.rectangle)(box, fill=fill)
    # Seeded pixel noise, so the JPEGs are not flat colour (~6 KB each, like thumbnails).
    noise = Image.frombytes("L", (side, side), rng.randbytes(side * side)).convert("RGB")
    image = Image.blend(image, noise, 0.3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), label


def make_shard(samples: list[tuple[int, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for index, jpeg, label in samples:
            for name, data in ((f"{index:05d}.jpg", jpeg), (f"{index:05d}.cls", b"%d" % label)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_manifest(client: Any, bucket: str) -> dict[str, Any] | None:
    try:
        body = client.get_object(Bucket=bucket, Key=MANIFEST_KEY)["Body"].read()
    except ClientError as err:
        if err.response["Error"]["Code"] in ("NoSuchKey", "NoSuchBucket"):
            return None
        raise
    return json.loads(body)


def upload_dataset(
    endpoint_url: str, bucket: str = DEFAULT_BUCKET, images: int = 512, shards: int = 4,
    seed: int = 0, threads: int = 16,
) -> dict[str, Any]:
    """Create ``bucket`` and upload the dataset unless it is there already; return its manifest.

    ``threads`` PUTs are in flight at once: many small objects, so without
    concurrency the server's latency would add up.
    """
    client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(
        max_pool_connections=threads, retries={"mode": "standard", "total_max_attempts": 10},
    ))
    existing = read_manifest(client, bucket)
    wanted = {"images": images, "shards": shards, "seed": seed}
    if existing is not None and existing["dataset"] == wanted:
        return existing
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as err:
        if err.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    samples = [(i, *make_image(i, seed)) for i in range(images)]
    per_shard = -(-images // shards)
    shard_keys = [f"shards/shard-{j:04d}.tar" for j in range(shards)]
    uploads = [(f"images/{i:05d}.jpg", jpeg) for i, jpeg, _ in samples] + [
        (key, make_shard(samples[j * per_shard:(j + 1) * per_shard]))
        for j, key in enumerate(shard_keys)
    ]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]),
                      uploads))
    manifest = {
        "dataset": wanted,
        "images": [{"key": f"images/{i:05d}.jpg", "label": label} for i, _, label in samples],
        "shards": shard_keys,
    }
    client.put_object(Bucket=bucket, Key=MANIFEST_KEY, Body=json.dumps(manifest).encode())
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="S3 endpoint URL")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    use_test_credentials()
    manifest = upload_dataset(args.endpoint, args.bucket, args.images, args.shards, args.seed)
    print(f"s3://{args.bucket}: {len(manifest['images'])} images, "
          f"{len(manifest['shards'])} shards, {MANIFEST_KEY}")


if __name__ == "__main__":
    main()
