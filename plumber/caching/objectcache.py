"""A read-through cache of S3 object reads, so that epochs after the first skip the network.

A training pipeline that reads the same S3 objects every epoch pays a round
trip to the store per object per epoch. With this cache in front of its
botocore client it pays it on the first epoch only: later reads of an object
are served from memory or a local directory. It works with any code that
calls ``client.get_object(Bucket=..., Key=..., ...)`` and reads
``response["Body"]`` (``read()``, ``read(n)``, ``iter_chunks()``,
``tarfile.open(fileobj=body, mode="r|")``)::

    client = plumber.objectcache.cache_object_reads(boto3.client("s3"))

    with plumber.objectcache.caching_new_clients("/scratch/s3cache") as cache:
        train()                      # every S3 client made in here caches into ``cache``
    print(cache.describe())

Assumption: objects do not change during the run. The cache never
revalidates an entry (asking the store whether an object changed costs the
round trip the cache is there to save), so an object overwritten after it was
cached is read as it was. Conditional reads (``IfMatch``, ``IfNoneMatch``,
``IfModifiedSince``, ``IfUnmodifiedSince``) ask the store on purpose: they
bypass the cache entirely.

How: botocore emits events around every call, and handlers registered on one
client's ``meta.events`` see that client's GetObject calls only.

- ``before-parameter-build.s3.GetObject`` receives the caller's parameters and
  the call's ``context`` dict; the cache key goes into the context. It is a
  digest of the client's endpoint URL (two endpoints may hold buckets of the
  same name) and every parameter of the call: bucket, key, ``Range``,
  ``VersionId``, ``PartNumber``, the SSE-C key (as a digest), response
  overrides, anything that could change what comes back.
- ``before-call.s3.GetObject``: a handler that returns ``(http_response,
  parsed)`` replaces the HTTP request. A hit returns a fresh ``StreamingBody``
  over the cached bytes, a copy of the cached fields (``ContentLength``,
  ``ETag``, ``ContentType``, ``Metadata``, ``LastModified``...) and an
  ``AWSResponse`` with the status the store gave (200, or 206 for a range).
- ``after-call.s3.GetObject`` receives the response of a miss. A successful
  (2xx) one whose ``ContentLength`` fits the budget is read whole there,
  stored, and its ``Body`` replaced by one over the bytes read. Everything else
  (errors, objects that do not fit) passes unchanged: errors raise exactly as
  without the cache and are never cached, and an object too large for the
  budget is streamed to the caller as usual, never read eagerly.

One difference remains: a miss that gets cached reads its body inside
``get_object``, so a connection that fails mid-body raises from there rather
than from ``Body.read()`` (the same botocore exception).

Where entries live (``location``):

- ``"memory"``: a dict in this process. A forked DataLoader worker gets its
  own copy-on-write copy and fills it alone; use a directory to share.
- a directory: one file per entry (:class:`plumber.caching.entrystore.EntryStore`,
  written through a temporary file and ``os.replace``), so every process
  reading it, forked or not, sees whole entries and shares one byte budget.
  Entry names follow from the endpoint, bucket and key, so the directory
  must be private: it is made 0700 when missing, and one that another user
  owns or that group or others may write is refused
  (:class:`plumber.caching.entrystore.UnsafeCacheFolderError`), when the cache
  is made and again before each read. Each entry holds the cache key it
  answers, the size of the bytes, the response's ETag and Last-Modified and
  a SHA-256 of it all; an entry that does not match is removed and the
  object read from the store again, never served.

``hits`` and ``misses`` count this process's lookups; ``bytes_held`` is what
the cache holds (for a directory, across all processes using it).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import os
import shutil
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from plumber.caching.entrystore import EntryStore, make_private_folder
from plumber.records.units import size

MEMORY = "memory"

#: Parameters that ask the store whether the object changed: such reads bypass the cache.
CONDITIONAL_PARAMETERS = frozenset(
    {"IfMatch", "IfNoneMatch", "IfModifiedSince", "IfUnmodifiedSince"}
)

_EVENT_SUFFIX = "s3.GetObject"
_CONTEXT_KEY = "plumber_objectcache"  # this module's state in botocore's per-call context
_CLIENT_ATTRIBUTE = "_plumber_object_cache"  # on a client: the cache it reads through
_ACTIVE = "plumber_caching_active"  # on a create_client wrapper: whether its context is active
_LEFT_OUT = ("Body", "ResponseMetadata")  # parsed fields not kept with an entry


@dataclass(frozen=True)
class _Entry:
    """One cached response: the body's bytes and what the caller got beside them."""

    data: bytes
    fields: dict[str, Any]  # the parsed response but for _LEFT_OUT
    status: int  # 200, or 206 for a range
    headers: dict[str, str]


class ObjectCache:
    """Cached GetObject responses, in memory or in a directory, at most ``budget_bytes`` of them.

    ``budget_bytes=None``: half the memory available now (``"memory"``) or
    half the free space of the directory's filesystem. An object that would
    pass the budget is not cached (its read is served from the store as
    usual); smaller ones still are. A directory's budget counts the entry
    files of every process using it, each with a line of response fields
    before the bytes; as :mod:`plumber.torch`'s caches, it takes no more
    entries once its filesystem runs low or a write fails.
    """

    def __init__(self, location: str = MEMORY, budget_bytes: int | None = None) -> None:
        if budget_bytes is not None and budget_bytes < 0:
            raise ValueError(f"budget_bytes must be zero or more, not {budget_bytes}")
        self.location = str(location)
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=functools.partial(_renew_lock, weakref.ref(self)))
        self._hits = 0
        self._misses = 0
        self._entries: dict[str, _Entry] = {}
        self._held = 0
        self._store: EntryStore | None = None
        if self.location == MEMORY:
            default = psutil.virtual_memory().available // 2
            self.budget_bytes = default if budget_bytes is None else budget_bytes
        else:
            directory = make_private_folder(Path(self.location))
            default = shutil.disk_usage(directory).free // 2
            self.budget_bytes = default if budget_bytes is None else budget_bytes
            in_memory = directory.resolve().is_relative_to("/dev/shm")  # RAM is its limit too
            self._store = EntryStore(directory, self.budget_bytes, in_memory)

    @property
    def hits(self) -> int:
        """Reads served from the cache, in this process."""
        return self._hits

    @property
    def misses(self) -> int:
        """Cacheable reads that went to the store, in this process."""
        return self._misses

    @property
    def bytes_held(self) -> int:
        """Bytes the cache holds (a directory's: its entries' files, written by any process)."""
        if self._store is None:
            return self._held
        return self._store.used_bytes()

    def describe(self) -> str:
        """One line, e.g. ``memory, 3.1 MB of 2 GB held, 192 hits, 96 misses``."""
        return (f"{self.location}, {size(self.bytes_held)} of {size(self.budget_bytes)} held, "
                f"{self.hits} hits, {self.misses} misses")

    def __repr__(self) -> str:
        return f"ObjectCache({self.describe()})"

    def _lookup(self, key: str) -> _Entry | None:
        """The entry under ``key``, counted as a hit, or None, counted as a miss."""
        entry = self._entries.get(key) if self._store is None else self._load(key)
        with self._lock:
            if entry is None:
                self._misses += 1
            else:
                self._hits += 1
        return entry

    def _fits(self, nbytes: int) -> bool:
        """Whether an object of ``nbytes`` would be stored now (checked before reading it)."""
        if self._store is None:
            return self._held + nbytes <= self.budget_bytes
        return not self._store.full and self._store.used_bytes() + nbytes <= self.budget_bytes

    def _put(self, key: str, entry: _Entry) -> None:
        """Keep ``entry`` under ``key`` if it fits; a cache that cannot store it stays silent."""
        if self._store is None:
            with self._lock:
                if key not in self._entries and self._held + len(entry.data) <= self.budget_bytes:
                    self._entries[key] = entry
                    self._held += len(entry.data)
            return
        try:
            payload = _dumps(key, entry)
            # An entry that does not fit is skipped here: the store would mark itself full.
            if self._store.used_bytes() + len(payload) <= self.budget_bytes:
                self._store.save(key, payload)
        except (OSError, TypeError, ValueError):
            pass  # not cached (a full disk, a field JSON cannot hold): the read is served anyway

    def _load(self, key: str) -> _Entry | None:
        """The entry stored under ``key`` if it checks out; one that does not is removed."""
        assert self._store is not None
        payload = self._store.load(key)
        if payload is None:
            return None
        try:
            return _loads(key, payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            # Damaged, planted or of another format: read from the store, and written anew.
            self._store.discard(key)
            return None


def cache_object_reads(
    client: Any,
    location: str = MEMORY,
    budget_bytes: int | None = None,
    cache: ObjectCache | None = None,
) -> Any:
    """Put a cache in front of ``client``'s GetObject calls; returns ``client``.

    ``client`` is a botocore S3 client (``boto3.client("s3", ...)``). The cache
    is ``cache`` when given (to share one between clients), else a new
    :class:`ObjectCache` of ``location`` and ``budget_bytes``. A client that
    already caches keeps its cache: calling this again registers nothing more
    (and refuses a different ``cache``).
    """
    meta = getattr(client, "meta", None)
    service = getattr(getattr(meta, "service_model", None), "service_name", None)
    if service != "s3":
        what = f"an {service!r} client" if service else f"a {type(client).__name__}"
        raise ValueError(
            f"cache_object_reads caches the GetObject calls of a botocore S3 client "
            f"(boto3.client('s3')); it was given {what}"
        )
    current = getattr(client, _CLIENT_ATTRIBUTE, None)
    if current is not None:
        if cache is not None and cache is not current:
            raise ValueError(
                f"this client already reads through another cache ({current.describe()})"
            )
        return client
    cache = cache if cache is not None else ObjectCache(location, budget_bytes)
    hooks = _ClientHooks(cache, meta.endpoint_url)
    meta.events.register(f"before-parameter-build.{_EVENT_SUFFIX}", hooks.key_call)
    meta.events.register(f"before-call.{_EVENT_SUFFIX}", hooks.serve_hit)
    # First, so that another after-call handler that reads the body reads the copy.
    meta.events.register_first(f"after-call.{_EVENT_SUFFIX}", hooks.keep_miss)
    setattr(client, _CLIENT_ATTRIBUTE, cache)
    return client


@contextmanager
def caching_new_clients(
    location: str = MEMORY, budget_bytes: int | None = None
) -> Iterator[ObjectCache]:
    """While active, every S3 client made (boto3 or botocore, any session) caches into one cache.

    Yields that :class:`ObjectCache`. It wraps
    ``botocore.client.ClientCreator.create_client``, the one place every
    client is made, and restores it on exit; clients made meanwhile keep
    caching. A process forked while it is active (a DataLoader worker)
    inherits the wrapper and the cache.
    """
    from botocore.client import ClientCreator

    cache = ObjectCache(location, budget_bytes)
    original = ClientCreator.create_client

    @functools.wraps(original)
    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        if (
            getattr(create_client, _ACTIVE)
            and client.meta.service_model.service_name == "s3"
            and getattr(client, _CLIENT_ATTRIBUTE, None) is None  # an outer context's won
        ):
            cache_object_reads(client, cache=cache)
        return client

    setattr(create_client, _ACTIVE, True)
    ClientCreator.create_client = create_client
    try:
        yield cache
    finally:
        setattr(create_client, _ACTIVE, False)
        # Left before a context entered after it, this wrapper stays in that
        # one's chain, inert, until that one is left and unwraps both.
        if ClientCreator.__dict__.get("create_client") is create_client:
            ClientCreator.create_client = _without_inert_wrappers(original)


def _without_inert_wrappers(function: Any) -> Any:
    """``function`` less the wrappers of :func:`caching_new_clients` contexts already left."""
    while getattr(function, _ACTIVE, None) is False:
        function = function.__wrapped__
    return function


@dataclass
class _Call:
    """One GetObject call's cache key, and whether the cache answered it."""

    key: str
    hit: bool = False


class _ClientHooks:
    """The event handlers that put one cache in front of one client's GetObject calls."""

    def __init__(self, cache: ObjectCache, endpoint_url: str) -> None:
        self.cache = cache
        self.endpoint_url = endpoint_url

    def key_call(self, params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        """``before-parameter-build``: key the call, unless it is conditional."""
        if CONDITIONAL_PARAMETERS.isdisjoint(params):
            context[_CONTEXT_KEY] = _Call(_key(self.endpoint_url, params))

    def serve_hit(self, params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> Any:
        """``before-call``: the cached response instead of a request, or None to make one."""
        call = context.get(_CONTEXT_KEY)
        if call is None:
            return None
        entry = self.cache._lookup(call.key)
        if entry is None:
            return None
        call.hit = True
        return _replay(entry, params.get("url"))

    def keep_miss(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any
    ) -> None:
        """``after-call``: read and keep a successful response that fits; leave others alone."""
        from botocore.response import StreamingBody

        call = context.get(_CONTEXT_KEY)
        if call is None or call.hit or not 200 <= http_response.status_code < 300:
            return
        body, length = parsed.get("Body"), parsed.get("ContentLength")
        if body is None or length is None or not self.cache._fits(length):
            return
        data = body.read()
        parsed["Body"] = StreamingBody(io.BytesIO(data), len(data))
        fields = copy.deepcopy({k: v for k, v in parsed.items() if k not in _LEFT_OUT})
        headers = dict(parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {}))
        self.cache._put(call.key, _Entry(data, fields, http_response.status_code, headers))


def _key(endpoint_url: str, params: dict[str, Any]) -> str:
    """A digest of the endpoint and every parameter (the SSE-C key only as a digest)."""
    items = []
    for name, value in sorted(params.items()):
        if name == "SSECustomerKey":
            value = hashlib.sha256(repr(value).encode()).hexdigest()
        items.append((name, repr(value)))
    return hashlib.sha256(repr((endpoint_url, items)).encode()).hexdigest()


def _replay(entry: _Entry, url: str | None) -> tuple[Any, dict[str, Any]]:
    """What ``before-call`` returns for a hit: ``(http_response, parsed)``, fresh each time."""
    from botocore.awsrequest import AWSResponse
    from botocore.response import StreamingBody

    parsed = copy.deepcopy(entry.fields)
    parsed["Body"] = StreamingBody(io.BytesIO(entry.data), len(entry.data))
    parsed["ResponseMetadata"] = {
        "HTTPStatusCode": entry.status, "HTTPHeaders": dict(entry.headers), "RetryAttempts": 0,
    }
    return AWSResponse(url, entry.status, entry.headers, None), parsed


def _dumps(key: str, entry: _Entry) -> bytes:
    """An entry as one file: a JSON line of its fields, status, headers and checks, then the bytes.

    The checks: the cache key it answers, the size of the bytes, the ETag and
    Last-Modified of the response (None where it had none) and a SHA-256 of
    the rest of the line and the bytes.
    """
    datetimes = sorted(name for name, value in entry.fields.items() if isinstance(value, datetime))
    fields = {name: value.isoformat() if name in datetimes else value
              for name, value in entry.fields.items()}
    header = {"fields": fields, "datetimes": datetimes, "status": entry.status,
              "headers": entry.headers, "key": key, "size": len(entry.data),
              "etag": fields.get("ETag"), "last_modified": fields.get("LastModified")}
    header["sha256"] = _digest(header, entry.data)
    return json.dumps(header).encode() + b"\n" + entry.data


def _loads(key: str, payload: bytes) -> _Entry:
    """The entry in ``payload`` once it checks out as the response to ``key``; else ValueError."""
    end = payload.index(b"\n")
    header = json.loads(payload[:end])
    data = payload[end + 1:]
    fields = header["fields"]
    checks = {
        "the key": header["key"] == key,
        "the size": header["size"] == len(data) == fields.get("ContentLength", len(data)),
        "the ETag": header["etag"] == fields.get("ETag"),
        "Last-Modified": header["last_modified"] == fields.get("LastModified"),
        "the digest": header.pop("sha256") == _digest(header, data),
    }
    failed = [what for what, holds in checks.items() if not holds]
    if failed:
        raise ValueError(f"the entry does not match {', '.join(failed)}")
    for name in header["datetimes"]:
        fields[name] = datetime.fromisoformat(fields[name])
    return _Entry(data, fields, header["status"], header["headers"])


def _digest(header: dict[str, Any], data: bytes) -> str:
    """A SHA-256 of ``header`` (as canonical JSON) and ``data``."""
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(b"\n")
    digest.update(data)
    return digest.hexdigest()


def _renew_lock(cache_ref: weakref.ref[ObjectCache]) -> None:
    """After a fork: a new lock, since the parent's may have been held by a thread not copied."""
    cache = cache_ref()
    if cache is not None:
        cache._lock = threading.Lock()

