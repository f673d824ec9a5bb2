"""The read-through cache of S3 object reads, against a real S3 server over HTTP.

Requests are counted on the server: a WSGI wrapper in front of moto counts
every GET as it arrives, so a read served from the cache is one the server
never saw.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import botocore.session  # noqa: E402
from botocore.client import ClientCreator  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from examples.objectstore.server import S3Server  # noqa: E402
from plumber.caching.entrystore import UnsafeCacheFolderError  # noqa: E402
from plumber.objectcache import ObjectCache, cache_object_reads, caching_new_clients  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class GetCounter:
    """WSGI middleware counting the GET requests that reach the app, when they arrive."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "GET":
            self.paths.append(environ["PATH_INFO"])
        return self.app(environ, start_response)

    @property
    def count(self) -> int:
        return len(self.paths)


@pytest.fixture(scope="module")
def server():
    s3_server = S3Server(latency_s=0.0)
    s3_server.gets = GetCounter(s3_server.middleware.app)
    s3_server.middleware.app = s3_server.gets
    with s3_server:
        yield s3_server


@pytest.fixture(autouse=True)
def _test_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_CSM_ENABLED", raising=False)


def client(server: S3Server, **config: Any) -> Any:
    config.setdefault("connect_timeout", 5)
    config.setdefault("read_timeout", 10)
    return boto3.client("s3", endpoint_url=server.endpoint_url, config=Config(**config))


def bucket_with(server: S3Server, **objects: bytes) -> str:
    """A fresh bucket holding ``objects`` (moto's state is shared by every server here)."""
    s3 = client(server)
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body, ContentType="application/x-test",
                      Metadata={"origin": key})
    return name


def gets_during(server: S3Server, read: Any) -> tuple[Any, int]:
    """What ``read()`` returned, and how many GETs reached the server meanwhile."""
    before = server.gets.count
    result = read()
    return result, server.gets.count - before


def read(s3: Any, bucket: str, key: str, **params: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **params)["Body"].read()


def fields(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k not in ("Body", "ResponseMetadata")}


def make_tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_second_read_is_served_without_a_request_and_returns_the_same_response(server):
    data = random.Random(1).randbytes(50_000)
    bucket = bucket_with(server, obj=data)
    cache = ObjectCache(budget_bytes=2_000_000_000)
    s3 = cache_object_reads(client(server), cache=cache)

    first, first_gets = gets_during(server, lambda: s3.get_object(Bucket=bucket, Key="obj"))
    first_data = first["Body"].read()
    second, second_gets = gets_during(server, lambda: s3.get_object(Bucket=bucket, Key="obj"))

    assert (first_gets, second_gets) == (1, 0)
    assert first_data == second["Body"].read() == data
    assert fields(second) == fields(first)
    assert second["ContentType"] == "application/x-test"
    assert second["Metadata"] == {"origin": "obj"}
    assert second["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (cache.hits, cache.misses, cache.bytes_held) == (1, 1, len(data))
    assert cache.describe() == "memory, 50 kB of 2 GB held, 1 hits, 1 misses"


def test_a_hit_streams_through_read_n_iter_chunks_and_tarfile(server):
    members = {f"{i:03d}.bin": random.Random(i).randbytes(3000 + i) for i in range(20)}
    shard = make_tar(members)
    bucket = bucket_with(server, shard=shard)
    s3 = cache_object_reads(client(server))
    assert read(s3, bucket, "shard") == shard  # the miss that fills the cache

    def stream_all() -> tuple[bytes, bytes, dict[str, bytes]]:
        body = s3.get_object(Bucket=bucket, Key="shard")["Body"]
        pieces = [body.read(1000), body.read(7)]
        while piece := body.read(4096):
            pieces.append(piece)
        chunks = b"".join(s3.get_object(Bucket=bucket, Key="shard")["Body"].iter_chunks(5000))
        body = s3.get_object(Bucket=bucket, Key="shard")["Body"]
        with tarfile.open(fileobj=body, mode="r|") as tar:
            streamed = {m.name: tar.extractfile(m).read() for m in tar}
        return b"".join(pieces), chunks, streamed

    (pieces, chunks, streamed), gets = gets_during(server, stream_all)
    assert gets == 0
    assert pieces == chunks == shard
    assert streamed == members


def test_ranges_of_a_key_and_other_keys_are_separate_entries(server):
    bucket = bucket_with(server, a=b"0123456789" * 10, b=b"abcdefghij" * 10)
    s3 = cache_object_reads(client(server))

    def read_all() -> list[bytes]:
        return [read(s3, bucket, "a"), read(s3, bucket, "a", Range="bytes=0-9"),
                read(s3, bucket, "a", Range="bytes=10-14"), read(s3, bucket, "b")]

    first, first_gets = gets_during(server, read_all)
    again, again_gets = gets_during(server, read_all)
    assert first == again == [b"0123456789" * 10, b"0123456789", b"01234", b"abcdefghij" * 10]
    assert (first_gets, again_gets) == (4, 0)
    ranged = s3.get_object(Bucket=bucket, Key="a", Range="bytes=10-14")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["ContentRange"] == "bytes 10-14/100"


def test_the_same_bucket_and_key_at_another_endpoint_is_another_entry(server):
    bucket = bucket_with(server, obj=b"here")
    cache = ObjectCache()
    with S3Server() as other:  # moto's state is shared: the same bucket, another endpoint
        s3 = cache_object_reads(client(server), cache=cache)
        elsewhere = cache_object_reads(client(other), cache=cache)
        assert read(s3, bucket, "obj") == read(elsewhere, bucket, "obj") == b"here"
    assert cache.misses == 2


def test_a_missing_key_raises_the_same_error_every_time_and_is_not_cached(server):
    bucket = bucket_with(server, obj=b"x")
    cache = ObjectCache()
    cached = cache_object_reads(client(server), cache=cache)
    with pytest.raises(ClientError) as plain:
        client(server).get_object(Bucket=bucket, Key="missing")
    assert plain.value.response["Error"]["Code"] == "NoSuchKey"
    for _ in range(2):
        before = server.gets.count
        with pytest.raises(ClientError) as through_cache:
            cached.get_object(Bucket=bucket, Key="missing")
        assert server.gets.count - before == 1  # asked the store again: nothing was cached
        assert type(through_cache.value) is type(plain.value)
        assert through_cache.value.response["Error"] == plain.value.response["Error"]
        assert str(through_cache.value) == str(plain.value)
    assert (cache.hits, cache.misses, cache.bytes_held) == (0, 2, 0)


@pytest.mark.parametrize("where", ["memory", "directory"])
def test_objects_beyond_the_budget_are_not_cached_but_are_read_correctly(server, tmp_path, where):
    big, small = random.Random(2).randbytes(20_000), random.Random(3).randbytes(1000)
    bucket = bucket_with(server, big=big, small=small)
    cache = ObjectCache("memory" if where == "memory" else str(tmp_path), budget_bytes=8000)
    s3 = cache_object_reads(client(server), cache=cache)

    bodies = [s3.get_object(Bucket=bucket, Key="big")["Body"] for _ in range(2)]
    # Streamed from the connection, not read eagerly into memory by the cache:
    assert not any(isinstance(body._raw_stream, io.BytesIO) for body in bodies)
    assert [body.read() for body in bodies] == [big, big]
    small_reads, gets = gets_during(server, lambda: [read(s3, bucket, "small") for _ in range(3)])
    assert small_reads == [small] * 3
    assert gets == 1
    assert 1000 <= cache.bytes_held <= 8000


def test_a_directory_is_shared_by_two_clients_and_holds_only_whole_entries(server, tmp_path):
    data = random.Random(4).randbytes(30_000)
    bucket = bucket_with(server, obj=data)
    first = cache_object_reads(client(server), location=str(tmp_path))
    second = cache_object_reads(client(server), location=str(tmp_path))

    response, first_gets = gets_during(server, lambda: first.get_object(Bucket=bucket, Key="obj"))
    assert response["Body"].read() == data
    shared, second_gets = gets_during(server, lambda: second.get_object(Bucket=bucket, Key="obj"))
    assert (first_gets, second_gets) == (1, 0)
    assert shared["Body"].read() == data
    assert fields(shared) == fields(response)

    entries = list(tmp_path.glob("*.entry"))
    assert len(entries) == 1
    assert entries[0].read_bytes().endswith(b"\n" + data)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files


def test_a_failed_write_leaves_no_partial_entry_and_the_read_is_served(server, tmp_path,
                                                                      monkeypatch):
    bucket = bucket_with(server, obj=b"payload" * 100)
    s3 = cache_object_reads(client(server), location=str(tmp_path))

    def no_replace(source: Any, target: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_replace)
    assert read(s3, bucket, "obj") == b"payload" * 100
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.entry"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    _, gets = gets_during(server, lambda: read(s3, bucket, "obj"))
    assert gets == 1


def test_caching_new_clients_patches_clients_made_inside_and_none_after(server):
    bucket = bucket_with(server, obj=b"shared")
    original = ClientCreator.create_client
    with caching_new_clients() as cache:
        made_by_boto3 = client(server)
        made_by_botocore = botocore.session.get_session().create_client(
            "s3", endpoint_url=server.endpoint_url, region_name="us-east-1")
        boto3.client("sqs", region_name="us-east-1")  # not S3: made as usual
    assert ClientCreator.create_client is original
    after = client(server)

    _, inside_gets = gets_during(server, lambda: [read(made_by_boto3, bucket, "obj"),
                                                  read(made_by_botocore, bucket, "obj")])
    assert inside_gets == 1  # one cache shared by both
    _, after_gets = gets_during(server, lambda: [read(after, bucket, "obj") for _ in range(2)])
    assert after_gets == 2
    _, kept_gets = gets_during(server, lambda: read(made_by_boto3, bucket, "obj"))
    assert kept_gets == 0
    assert (cache.hits, cache.misses) == (2, 1)


def test_contexts_left_out_of_order_leave_nothing_patched(server):
    original = ClientCreator.create_client
    outer, inner = caching_new_clients(), caching_new_clients()
    outer_cache = outer.__enter__()
    inner_cache = inner.__enter__()
    outer.__exit__(None, None, None)
    s3 = client(server)
    inner.__exit__(None, None, None)
    assert ClientCreator.create_client is original
    bucket = bucket_with(server, obj=b"x")
    read(s3, bucket, "obj")
    assert (outer_cache.misses, inner_cache.misses) == (0, 1)


def test_calling_cache_object_reads_twice_registers_once(server):
    bucket = bucket_with(server, obj=b"once")
    cache = ObjectCache()
    s3 = client(server)
    assert cache_object_reads(s3, cache=cache) is s3
    assert cache_object_reads(s3, cache=cache) is s3
    assert cache_object_reads(s3) is s3
    _, gets = gets_during(server, lambda: [read(s3, bucket, "obj") for _ in range(2)])
    assert gets == 1
    assert (cache.hits, cache.misses) == (1, 1)  # registered twice would count two misses
    with pytest.raises(ValueError, match="another cache"):
        cache_object_reads(s3, cache=ObjectCache())


def test_a_client_that_is_not_s3_is_refused():
    with pytest.raises(ValueError, match="S3 client.*'sqs'"):
        cache_object_reads(boto3.client("sqs", region_name="us-east-1"))
    with pytest.raises(ValueError, match="S3 client"):
        cache_object_reads(object())


def test_a_conditional_read_bypasses_the_cache(server):
    bucket = bucket_with(server, obj=b"etag me")
    s3 = cache_object_reads(client(server))
    etag = s3.get_object(Bucket=bucket, Key="obj")["ETag"]
    response, gets = gets_during(server, lambda: s3.get_object(Bucket=bucket, Key="obj",
                                                              IfMatch=etag))
    assert gets == 1 and response["Body"].read() == b"etag me"


def test_a_hit_passes_botocores_own_after_call_handlers(server, monkeypatch):
    # Standard retries release their quota in after-call (reads the status) and
    # client-side monitoring reads ResponseMetadata and the call's context.
    monkeypatch.setenv("AWS_CSM_ENABLED", "true")
    monkeypatch.setenv("AWS_CSM_PORT", "9")  # UDP to the discard port
    bucket = bucket_with(server, obj=b"monitored")
    s3 = cache_object_reads(client(server, retries={"mode": "standard"}))
    _, gets = gets_during(server, lambda: [read(s3, bucket, "obj") for _ in range(3)])
    assert gets == 1


def test_reads_from_eight_threads_return_the_right_bytes(server):
    objects = {f"k{i:02d}": random.Random(i).randbytes(1000 + 997 * i) for i in range(16)}
    bucket = bucket_with(server, **objects)
    cache = ObjectCache()
    s3 = cache_object_reads(client(server, max_pool_connections=8), cache=cache)

    def reader(seed: int) -> bool:
        keys = sorted(objects)
        random.Random(seed).shuffle(keys)
        return all(read(s3, bucket, key) == objects[key] for key in keys * 2)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(reader, range(8)))
    _, gets = gets_during(server, lambda: [read(s3, bucket, key) for key in objects])
    assert gets == 0
    assert cache.bytes_held == sum(len(data) for data in objects.values())
    assert cache.hits + cache.misses == 8 * 32 + 16


def test_a_process_forked_while_active_caches_its_new_clients(server):
    bucket = bucket_with(server, obj=b"forked")
    with caching_new_clients():
        before = server.gets.count
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 when its client cached
            try:
                s3 = client(server)
                ok = [read(s3, bucket, "obj") for _ in range(2)] == [b"forked"] * 2
                os._exit(0 if ok else 1)
            finally:
                os._exit(2)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert server.gets.count - before == 1


def test_importing_the_module_does_not_import_botocore():
    code = ("import sys; sys.modules['botocore'] = None; import plumber.caching.objectcache as m; "
            "print(m.ObjectCache().describe())")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("memory, 0 B of ")


def test_a_client_made_inside_two_caching_contexts_reads_through_the_outer_ones_cache(server):
    # As with `plumber run --plan` on a script that calls plumber.optimize(make, plan=...).
    bucket = bucket_with(server, obj=b"nested")
    with caching_new_clients() as outer, caching_new_clients() as inner:
        s3 = client(server)
        assert read(s3, bucket, "obj") == read(s3, bucket, "obj") == b"nested"
    assert (outer.hits, outer.misses) == (1, 1)
    assert (inner.hits, inner.misses) == (0, 0)


def entry_files(folder: Path) -> set[Path]:
    return set(folder.glob("*.entry"))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_cache_folder_owned_by_another_user_is_refused(tmp_path):
    import pwd

    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(UnsafeCacheFolderError, match=f"{folder}.*owned by"):
        ObjectCache(str(folder))


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_cache_folder_others_can_write_is_refused(tmp_path, mode):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(UnsafeCacheFolderError, match=f"{folder}.*writable by"):
        cache_object_reads(boto3.client("s3", region_name="us-east-1"), location=str(folder))


def test_a_new_cache_folder_and_the_parents_plumber_makes_are_private(tmp_path):
    ObjectCache(str(tmp_path / "made" / "cache"))
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "made" / "cache").stat().st_mode & 0o777 == 0o700


def test_a_folder_made_writable_by_others_after_the_cache_opened_it_is_refused(server, tmp_path):
    bucket = bucket_with(server, obj=b"kept")
    s3 = cache_object_reads(client(server), location=str(tmp_path))
    assert read(s3, bucket, "obj") == b"kept"
    tmp_path.chmod(0o777)
    with pytest.raises(UnsafeCacheFolderError, match="writable by"):
        read(s3, bucket, "obj")


def _planted_same_length(entry: bytes, data: bytes) -> bytes:
    """The entry with its object's bytes replaced by others of the same length."""
    return entry[:len(entry) - len(data)] + b"X" * len(data)


def _planted_in_the_old_format(entry: bytes, data: bytes) -> bytes:
    """A header as the cache wrote it before entries were verified, over other bytes."""
    header = json.loads(entry[:entry.index(b"\n")])
    header = {name: header[name] for name in ("fields", "datetimes", "status", "headers")}
    return json.dumps(header).encode() + b"\n" + b"X" * len(data)


@pytest.mark.parametrize("plant", [_planted_same_length, _planted_in_the_old_format])
def test_a_planted_entry_is_not_served_but_read_again_and_replaced(server, tmp_path, plant):
    data = random.Random(5).randbytes(5000)
    bucket = bucket_with(server, obj=data)
    s3 = cache_object_reads(client(server), location=str(tmp_path))
    assert read(s3, bucket, "obj") == data
    (entry,) = entry_files(tmp_path)
    entry.write_bytes(plant(entry.read_bytes(), data))

    served, gets = gets_during(server, lambda: read(s3, bucket, "obj"))
    assert (served, gets) == (data, 1)
    served, gets = gets_during(server, lambda: read(s3, bucket, "obj"))
    assert (served, gets) == (data, 0)


def test_an_entry_copied_to_another_objects_name_is_not_served(server, tmp_path):
    wanted, other = random.Random(6).randbytes(3000), random.Random(7).randbytes(3000)
    bucket = bucket_with(server, wanted=wanted, other=other)
    s3 = cache_object_reads(client(server), location=str(tmp_path))
    read(s3, bucket, "wanted")
    (wanted_entry,) = entry_files(tmp_path)
    read(s3, bucket, "other")
    (other_entry,) = entry_files(tmp_path) - {wanted_entry}
    wanted_entry.write_bytes(other_entry.read_bytes())

    served, gets = gets_during(server, lambda: read(s3, bucket, "wanted"))
    assert (served, gets) == (wanted, 1)


def test_an_entry_holds_the_size_validators_and_digest_of_its_response(server, tmp_path):
    data = random.Random(8).randbytes(2000)
    bucket = bucket_with(server, obj=data)
    s3 = cache_object_reads(client(server), location=str(tmp_path))
    response = s3.get_object(Bucket=bucket, Key="obj")
    response["Body"].read()
    (entry,) = entry_files(tmp_path)
    header = json.loads(entry.read_bytes().split(b"\n", 1)[0])
    assert header["size"] == len(data)
    assert header["etag"] == response["ETag"]
    assert header["last_modified"] == response["LastModified"].isoformat()
    assert len(header["sha256"]) == 64


def test_an_entry_that_is_a_link_is_not_followed(server, tmp_path):
    data = random.Random(9).randbytes(3000)
    bucket = bucket_with(server, obj=data)
    folder = tmp_path / "cache"
    s3 = cache_object_reads(client(server), location=str(folder))
    read(s3, bucket, "obj")
    (entry,) = entry_files(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(elsewhere)

    served, gets = gets_during(server, lambda: read(s3, bucket, "obj"))
    assert (served, gets) == (data, 1)
    assert not entry.is_symlink()


def test_a_cache_folder_removed_during_the_run_leaves_reads_served(server, tmp_path):
    bucket = bucket_with(server, obj=b"still here")
    folder = tmp_path / "cache"
    s3 = cache_object_reads(client(server), location=str(folder))
    read(s3, bucket, "obj")
    shutil.rmtree(folder)
    served, gets = gets_during(server, lambda: read(s3, bucket, "obj"))
    assert (served, gets) == (b"still here", 1)


def test_a_plan_naming_an_unsafe_folder_runs_without_the_object_cache(tmp_path):
    from plumber.records.plan import StageRef, StageSetting
    from plumber.tuner.appliers import ObjectCacheApplier

    # GIVEN a plan whose object cache names a folder anyone may write
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    ref = StageRef("train.py", 12, "map")
    applier = ObjectCacheApplier(StageSetting(stage=ref, stage_id="map-0",
                                              object_cache=str(shared)))
    # WHEN the plan is applied, THEN the script runs on and the report says why
    with applier:
        pass
    (changes,) = [a.changes for a in applier.applied.values()]
    assert changes[0].startswith("object cache not placed: ")
    assert str(shared) in changes[0]
