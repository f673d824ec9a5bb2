"""The dataset uploader of examples/objectstore: objects, shards and manifest agree, seeded."""

from __future__ import annotations

import io
import tarfile

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")
Image = pytest.importorskip("PIL.Image")

from examples.objectstore.server import S3Server  # noqa: E402
from examples.objectstore.upload import (  # noqa: E402
    MANIFEST_KEY,
    make_image,
    upload_dataset,
    use_test_credentials,
)


@pytest.fixture
def endpoint(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    use_test_credentials()
    with S3Server() as server:
        yield server.endpoint_url


def test_images_are_deterministic_jpegs_of_the_stated_sizes():
    jpeg, label = make_image(7, seed=0)
    assert (jpeg, label) == make_image(7, seed=0)
    assert make_image(7, seed=1)[0] != jpeg
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    assert 64 <= image.width == image.height <= 128
    assert label == 1


def test_upload_writes_objects_shards_and_a_manifest_that_agree(endpoint):
    manifest = upload_dataset(endpoint, "upload-agree", images=10, shards=3)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    assert [entry["label"] for entry in manifest["images"]] == [i % 2 for i in range(10)]
    objects = {entry["key"]: s3.get_object(Bucket="upload-agree", Key=entry["key"])["Body"].read()
               for entry in manifest["images"]}
    from_shards = {}
    for key in manifest["shards"]:
        body = s3.get_object(Bucket="upload-agree", Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            for member in tar.getmembers():
                from_shards[member.name] = tar.extractfile(member).read()
    assert len(manifest["shards"]) == 3
    names = [f"{i:05d}.{ext}" for i in range(10) for ext in ("jpg", "cls")]
    assert sorted(from_shards) == sorted(names)
    for i in range(10):
        assert from_shards[f"{i:05d}.jpg"] == objects[f"images/{i:05d}.jpg"]
        assert from_shards[f"{i:05d}.cls"] == str(i % 2).encode()
    assert s3.head_object(Bucket="upload-agree", Key=MANIFEST_KEY)["ContentLength"] > 0


def test_upload_is_skipped_when_the_same_dataset_is_there(endpoint):
    first = upload_dataset(endpoint, "upload-twice", images=4, shards=1)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.delete_object(Bucket="upload-twice", Key="images/00000.jpg")
    assert upload_dataset(endpoint, "upload-twice", images=4, shards=1) == first
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="upload-twice")["Contents"]}
    assert "images/00000.jpg" not in keys  # not uploaded again
    upload_dataset(endpoint, "upload-twice", images=5, shards=1)  # a different dataset is
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="upload-twice")["Contents"]}
    assert "images/00000.jpg" in keys
