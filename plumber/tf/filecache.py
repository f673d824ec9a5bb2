"""A plan's tf.data file cache, keyed by what it holds, so that a later run never reads stale data.

tf.data reuses the files at a cache prefix whenever ``PREFIX.index`` exists,
whatever pipeline wrote them. So the location a plan names is a folder, and
the cache inside it is named by a key: a digest of the pipeline below the
cache point as it is built in this run (its serialized graph and function
library, captured constants and arguments included, see
:func:`graph_fingerprint`) and of the files that graph names (paths, sizes,
modification times, see :func:`named_files`). A changed transform, argument
or data file gives a new key, hence a new cache. Where no key can be proven
(the graph holds Python functions, variables or random ops, or names too many
files), the cache is a fresh one for this run, removed at exit.

plumber records each process using a cache in a file of its own beside it
(``KEY.owner-PID``: host, pid and the process's start time). Before a cache
is used, the folder is tidied: every cache that no live process uses and
whose key is not this run's is removed (so at most one cache per pipeline
stays between runs); a cache of this run's key whose writer died (killed with
SIGKILL, leaving TF's ``*.lockfile``) is removed with its lock and written
again; one that another live process is still writing is left to it, and
this run gets a cache of its own. The folder must belong to the user and be
writable by no one else (it is made ``0700``); otherwise the cache is a
private one in the system's temporary folder, removed at exit.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plumber.records.folders import folder_problem

#: Strings in a graph checked for being file names; more and no key is given.
MAX_SCANNED_STRINGS = 200_000
#: Files a key may depend on (glob matches and folder entries included).
MAX_NAMED_FILES = 100_000
#: Hex digits of a key.
KEY_LENGTH = 24

_DT_STRING = 7
#: A name the folder's entries start with: a key, or a per-run cache ``run-PID-TOKEN``.
_ENTRY = re.compile(rf"^([0-9a-f]{{{KEY_LENGTH}}}|run-\d+-[0-9a-f]{{8}})[._]")
_OWNER = ".owner-"


@dataclass(frozen=True)
class PlacedCache:
    """Where this run's cache for a planned location is, and why there."""

    prefix: str
    note: str


def placed_file_cache(dataset: Any, location: str) -> PlacedCache:
    """The prefix to give ``dataset.cache()`` for a plan's file cache at ``location``."""
    return place(Path(location), pipeline_key(dataset))


def place(folder: Path, key: str | None) -> PlacedCache:
    """The cache of key ``key`` (None: unknown) in ``folder``, the folder tidied first."""
    unsafe = _unsafe_folder(folder)
    if unsafe:
        private = Path(tempfile.mkdtemp(prefix="plumber-cache-"))
        _at_exit(shutil.rmtree, private, ignore_errors=True)
        return PlacedCache(str(private / "cache"), f"{unsafe}; a private cache for this run "
                                                   f"in {private}, removed at exit")
    _tidy(folder, keep=key)
    if key is None:
        return _per_run(folder, "the pipeline's inputs cannot be fingerprinted "
                                "(Python functions, variables, random ops or too many files)")
    _own(folder, key)
    writers = _live_owners(folder, key) - {os.getpid()}
    if writers and not _complete(folder, key):
        return _per_run(folder, f"process {min(writers)} is writing this cache")
    return PlacedCache(str(folder / key), f"{folder}/{key}, keyed by the pipeline and its files")


def pipeline_key(dataset: Any) -> str | None:
    """A digest of the pipeline and the files it names; None when it cannot be proven."""
    graph = _serialized_graph(dataset)
    if graph is None:
        return None
    fingerprint = graph_fingerprint(graph)
    files = named_files(graph)
    if fingerprint is None or files is None:
        return None
    digest = hashlib.sha256(fingerprint.encode())
    for entry in files:
        digest.update(repr(entry).encode())
    return digest.hexdigest()[:KEY_LENGTH]


def graph_fingerprint(graph: Any) -> str | None:
    """A digest of a dataset's GraphDef that is the same in every run that builds it alike.

    Two things vary from run to run without changing the elements: function
    names carry a per-process counter, and dataset nodes carry a ``metadata``
    name with another. Functions are renamed in the order the graph first
    calls them, ``metadata`` is dropped, unused functions are left out and
    the rest is serialized deterministically, with TF's version. None when a
    called function is missing from the library (what it does is unknown).
    """
    from tensorflow import __version__ as tf_version
    from tensorflow.core.framework import graph_pb2

    functions = {f.signature.name: f for f in graph.library.function}
    names: dict[str, str] = {}  # in the order first called
    queue = deque(name for node in graph.node for name in _called(node, functions))
    while queue:
        name = queue.popleft()
        if name in names:
            continue
        if name not in functions:
            return None
        names[name] = f"f{len(names)}"
        for inner in functions[name].node_def:
            queue.extend(_called(inner, functions))
    canonical = graph_pb2.GraphDef()
    canonical.CopyFrom(graph)
    del canonical.library.function[:]
    del canonical.library.gradient[:]
    for node in canonical.node:
        _rename(node, names)
    for name in names:
        function = canonical.library.function.add()
        function.CopyFrom(functions[name])
        function.signature.name = names[name]
        for inner in function.node_def:
            _rename(inner, names)
    digest = hashlib.sha256(tf_version.encode())
    digest.update(canonical.SerializeToString(deterministic=True))
    return digest.hexdigest()


def named_files(graph: Any) -> list[tuple[str, int, int]] | None:
    """(path, size, mtime in ns) of every file the graph's string constants name.

    A string naming a file counts; a glob counts every file it matches and a
    folder every file in it (a file name may be built from it in the graph).
    None when there are too many strings or files to prove the data current.
    """
    found: dict[str, tuple[int, int]] = {}
    scanned = 0
    for text in _string_constants(graph):
        scanned += 1
        if scanned > MAX_SCANNED_STRINGS:
            return None
        try:
            paths = _paths_named(text)
        except OSError:  # a folder that cannot be listed: what it holds is unknown
            return None
        for path in paths:
            if path not in found:
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                found[path] = (info.st_size, info.st_mtime_ns)
            if len(found) > MAX_NAMED_FILES:
                return None
    return sorted((path, size, mtime) for path, (size, mtime) in found.items())


def _serialized_graph(dataset: Any) -> Any:
    """The dataset's GraphDef, or None when it holds state that cannot be serialized."""
    try:
        import tensorflow as tf
        from tensorflow.core.framework import graph_pb2

        raw = dataset._as_serialized_graph(
            strip_device_assignment=True,
            external_state_policy=tf.data.experimental.ExternalStatePolicy.FAIL,
        ).numpy()
        graph = graph_pb2.GraphDef()
        graph.ParseFromString(raw)
        return graph
    except Exception:  # noqa: BLE001 - any failure means no key, hence a per-run cache
        return None


def _called(node: Any, functions: dict[str, Any]) -> list[str]:
    """Functions a node calls: by attribute (``f``, lists of them) or as its op."""
    called = [node.op] if node.op in functions else []
    for key in sorted(node.attr):
        value = node.attr[key]
        if value.func.name:
            called.append(value.func.name)
        called.extend(f.name for f in value.list.func)
    return called


def _rename(node: Any, names: dict[str, str]) -> None:
    """Give the node's function references their canonical names; drop its metadata."""
    if node.op in names:
        node.op = names[node.op]
    if "metadata" in node.attr:
        del node.attr["metadata"]
    for value in node.attr.values():
        if value.func.name in names:
            value.func.name = names[value.func.name]
        for function in value.list.func:
            if function.name in names:
                function.name = names[function.name]


def _string_constants(graph: Any) -> Iterator[str]:
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    for node in nodes:
        if node.op == "Const" and node.attr["value"].tensor.dtype == _DT_STRING:
            for raw in node.attr["value"].tensor.string_val:
                yield raw.decode("utf-8", "replace")


def _paths_named(text: str) -> list[str]:
    """Files a string names: itself, its glob matches, or the files in the folder it is."""
    if not text or len(text) > 4096 or "\0" in text or text in (".", ".."):
        return []
    if os.path.isfile(text):
        return [os.path.abspath(text)]
    if os.path.isdir(text):
        with os.scandir(text) as entries:
            return [os.path.abspath(e.path) for e in entries if e.is_file()]
    if any(c in text for c in "*?["):
        return [os.path.abspath(p) for p in glob.glob(text) if os.path.isfile(p)]
    return []


def _unsafe_folder(folder: Path) -> str | None:
    """Why the cache folder cannot be trusted (made 0700 when missing), or None."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        return f"cache folder {folder} unusable ({exc.strerror})"
    problem = folder_problem(info)
    return None if problem is None else f"cache folder {folder} is not private: {problem}"


def _per_run(folder: Path, why: str) -> PlacedCache:
    """A cache only this run uses, its files removed at exit."""
    key = f"run-{os.getpid()}-{secrets.token_hex(4)}"
    _own(folder, key)
    return PlacedCache(str(folder / key), f"{why}; a cache for this run only in {folder}, "
                                          f"removed at exit")


def _own(folder: Path, key: str) -> None:
    """Record this process as a user of the cache ``key``, until it exits."""
    pid = os.getpid()
    record = folder / f"{key}{_OWNER}{pid}"
    record.write_text(f"{socket.gethostname()} {pid} {_start_time(pid)}\n")
    if key.startswith("run-"):
        _at_exit(_remove, folder, key)
    else:
        _at_exit(record.unlink, missing_ok=True)


def _at_exit(function: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Call ``function`` when this process exits, not when a child it forked does."""
    pid = os.getpid()
    atexit.register(lambda: function(*args, **kwargs) if os.getpid() == pid else None)


def _tidy(folder: Path, keep: str | None) -> None:
    """Forget dead users; remove the caches no live process uses, but ``keep``'s if complete."""
    for key in {m.group(1) for m in map(_ENTRY.match, os.listdir(folder)) if m}:
        if _live_owners(folder, key, forget_dead=True):
            continue
        if key != keep or not _complete(folder, key):
            _remove(folder, key)


def _complete(folder: Path, key: str) -> bool:
    """Whether TF finished writing the cache: its index is there and no writer's lock is."""
    return (folder / f"{key}.index").exists() and not glob.glob(
        glob.escape(str(folder / key)) + "_*.lockfile")


def _live_owners(folder: Path, key: str, forget_dead: bool = False) -> set[int]:
    """Pids of the live processes recorded as using the cache ``key`` (on this host or
    another: a process elsewhere cannot be checked, so it counts as live)."""
    live = set()
    for record in folder.glob(f"{key}{_OWNER}*"):
        try:
            host, number, started = record.read_text().split()
            pid = int(number)
            alive = 0 < pid < 2**31 and (host != socket.gethostname() or _alive(pid, started))
        except (OSError, ValueError):
            alive = False
        if alive:
            live.add(pid)
        elif forget_dead:
            record.unlink(missing_ok=True)
    return live


def _alive(pid: int, started: str) -> bool:
    """Whether ``pid`` is the process that was recorded (not a later one given its number)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started in ("?", _start_time(pid))


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), else ``?``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "?"
    return fields[19] if len(fields) > 19 else "?"


def _remove(folder: Path, key: str) -> None:
    """Remove every file of the cache ``key``: data, index, locks, partial files, records."""
    for path in glob.glob(glob.escape(str(folder / key)) + "[._]*"):
        try:
            os.remove(path)
        except OSError:
            pass
