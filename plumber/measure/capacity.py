"""Capacities of the machine: usable cores, memory, cold disk read bandwidth.

Cores and memory honour the CPU affinity mask and the cgroup (v2 or v1)
limits of this process's own cgroup and its ancestors, so a container with a
quota is not mistaken for the whole host.

The disk probe reads a file after dropping its pages from the page cache
(``posix_fadvise(DONTNEED)``), so it measures the storage, not memory.
DONTNEED drops only clean pages, so a file the probe writes is fsynced
first. Measured on the project's 2-core Firecracker VM (ext4 on virtio,
64 MiB in 4 MiB reads): DONTNEED does empty the guest's cache (``fincore``
shows 0 resident pages after it); warm re-reads ran at 7-10 GB/s, the
probe's fresh file read back at 2.2-2.6 GB/s after DONTNEED, existing files
re-read after DONTNEED at 0.9-1.5 GB/s, and files never read since boot at
0.5-0.8 GB/s. A cache below the VM (the host's) keeps recently written or
read blocks, out of DONTNEED's reach, so on such machines the write-then-read
probe overstates a truly cold read by up to 3-4x; reading the user's own
large data file in place is the better figure when there is one.

Disk results are cached per machine and filesystem (host name, boot id and
device number), so the probe does not run on every profile. A cached entry
is used only when every field is what this plumber version writes; any
other is measured again and rewritten.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from plumber.measure.sampler import probe_gpus
from plumber.records.folders import (
    data_cache_dir,
    default_cache_dir,
    folder_problem,
    free_bytes,
    private_file,
)
from plumber.records.load import MAX_MAGNITUDE
from plumber.records.profile import Machine
from plumber.records.version import __version__

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

#: How much the disk probe reads; a data file at least DIRECT_READ_MIN long
#: is read in place (up to this much) instead of writing a probe file.
PROBE_BYTES = 64 << 20
DIRECT_READ_MIN = 32 << 20
_CHUNK = 4 << 20
#: Each of the probe's write and read phases stops after this long (slow disks).
_PHASE_BUDGET_S = 1.0
_CACHE_FILE = "capacity.json"


# -- cgroups -------------------------------------------------------------------


def cgroup_dirs(
    controller: str, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> list[Path]:
    """Cgroup directories whose limits apply to this process (each hierarchy innermost first).

    ``controller`` is the v1 hierarchy name (``cpu``, ``memory``); v2's
    unified hierarchy is searched too. Each candidate is this process's
    cgroup (from ``/proc/self/cgroup``) and its ancestors up to the
    mount point. Paths that do not exist are skipped: inside a container
    the mount point itself usually is the container's cgroup.
    """
    mounts = {"": cgroup_root, controller: _v1_mount(cgroup_root, controller)}
    relative = _cgroup_paths(proc_cgroup, controller)
    dirs: list[Path] = []
    for hierarchy, mount in mounts.items():
        for directory in _ancestors(mount, relative.get(hierarchy, "/")):
            if directory not in dirs and directory.is_dir():
                dirs.append(directory)
    return dirs


def _v1_mount(root: Path, controller: str) -> Path:
    """Where the v1 hierarchy of ``controller`` is mounted.

    ``cpu`` is usually mounted jointly as ``cpu,cpuacct`` with a ``cpu``
    link to it, but not every distribution adds the link.
    """
    if controller == "cpu" and not (root / "cpu").is_dir():
        return root / "cpu,cpuacct"
    return root / controller


def _cgroup_paths(proc_cgroup: Path, controller: str) -> dict[str, str]:
    """The process's cgroup path for v2 (key ``""``) and for the v1 ``controller``."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return {}
    paths = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths[""] = path
        elif controller in controllers.split(","):
            paths[controller] = path
    return paths


def _ancestors(mount: Path, path: str) -> Iterator[Path]:
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        yield mount.joinpath(*parts[:depth])


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_quota(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The tightest CPU quota in cores (v2 ``cpu.max``, v1 CFS files), or None."""
    dirs = cgroup_dirs("cpu", cgroup_root, proc_cgroup)
    quotas = [q for d in dirs if (q := _cpu_quota_in(d))]
    return min(quotas) if quotas else None


def _cpu_quota_in(directory: Path) -> float | None:
    v2 = _read(directory / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2 and fields[0] != "max":
            return _ratio(fields[0], fields[1])
        return None
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    return _ratio(quota, period) if quota is not None and period is not None else None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cores(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> float:
    """CPUs this process may use: affinity mask and cgroup CPU quota, whichever is less."""
    if hasattr(os, "sched_getaffinity"):
        cores = float(len(os.sched_getaffinity(0)))
    else:
        cores = float(os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    return min(cores, quota) if quota else cores


def available_memory(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> tuple[int, int]:
    """(total, available) bytes, capped by the tightest cgroup memory limit when one is set."""
    memory = psutil.virtual_memory()
    total, available = int(memory.total), int(memory.available)
    for directory in cgroup_dirs("memory", cgroup_root, proc_cgroup):
        limit = _memory_limit_in(directory)
        if limit is not None and limit < total:
            used = _first_int(directory, ("memory.current", "memory.usage_in_bytes")) or 0
            total, available = limit, min(available, max(limit - used, 0))
    return total, available


def _memory_limit_in(directory: Path) -> int | None:
    # v2 writes "max" for no limit, v1 a huge number; either way it is not below total.
    return _first_int(directory, ("memory.max", "memory.limit_in_bytes"))


def _first_int(directory: Path, names: Sequence[str]) -> int | None:
    for name in names:
        text = _read(directory / name)
        if text is not None and text.isdigit():
            return int(text)
    return None


# -- disk bandwidth ------------------------------------------------------------


def measure_read_bandwidth(path: str | Path, probe_bytes: int = PROBE_BYTES) -> float:
    """Cold sequential read bandwidth (bytes/s) of the filesystem holding ``path``.

    A data file of at least ``DIRECT_READ_MIN`` bytes is read in place (up to
    ``probe_bytes``); otherwise a temporary file of ``probe_bytes`` is written
    beside it (same filesystem), synced, and read back. Either way its pages
    are dropped from the page cache first. Writing and reading each stop
    after about a second, so a slow disk costs ~2 s. Raises OSError when the
    probe file cannot be written (a read-only dataset mount).
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size >= min(DIRECT_READ_MIN, probe_bytes):
        return _cold_read(path, probe_bytes)
    directory = path if path.is_dir() else path.parent
    fd, name = tempfile.mkstemp(prefix=".plumber-probe-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            written = _write_probe(handle, probe_bytes)
        return _cold_read(Path(name), written)
    finally:
        os.unlink(name)


def _write_probe(handle: Any, size: int) -> int:
    """Write up to ``size`` incompressible bytes, fsync, and return how many."""
    block = memoryview(os.urandom(min(_CHUNK, size)))
    written, start = 0, time.perf_counter()
    while written < size and (written == 0 or time.perf_counter() - start < _PHASE_BUDGET_S):
        written += handle.write(block[: size - written])
    handle.flush()
    os.fsync(handle.fileno())  # DONTNEED leaves dirty pages in memory
    return written


def _cold_read(path: Path, limit: int) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        read, start = 0, time.perf_counter()
        while read < limit:
            chunk = os.read(fd, min(_CHUNK, limit - read))
            if not chunk:
                break
            read += len(chunk)
            if time.perf_counter() - start > _PHASE_BUDGET_S:
                break
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return read / max(elapsed, 1e-9)


# -- per-machine cache ---------------------------------------------------------


def _machine_prefix() -> str:
    """Host and boot: a reboot may change disks, mounts and caches, so it re-measures."""
    return f"{socket.gethostname()}|{_read(BOOT_ID) or 'unknown-boot'}|"


def cached_read_bandwidth(path: str | Path, cache_dir: str | Path | None = None) -> float:
    """Cold read bandwidth of ``path``'s filesystem, measured once per machine and boot."""
    path = Path(path)
    store = Path(cache_dir or default_cache_dir()) / _CACHE_FILE
    prefix = _machine_prefix()
    key = f"{prefix}dev{os.stat(path).st_dev}"
    entries = _read_cache(store)
    cached = _valid_bandwidth(entries.get(key))
    if cached is not None:
        return cached
    bandwidth = measure_read_bandwidth(path)
    entries = {k: v for k, v in entries.items() if not _same_host_other_boot(k, prefix)}
    entries[key] = {"disk_read_bps": bandwidth, "measured_at": time.time(), "path": str(path),
                    "plumber_version": __version__}
    _write_cache(store, entries)
    return bandwidth


#: The keys of a cache entry, as :func:`cached_read_bandwidth` writes them.
_ENTRY_KEYS = frozenset({"disk_read_bps", "measured_at", "path", "plumber_version"})


def _valid_bandwidth(entry: Any) -> float | None:
    """The cached bandwidth when ``entry`` is exactly what this plumber writes, else None.

    The cache is a file that may be edited or damaged: a ``true`` once
    read as 1 B/s made the disk the diagnosed bottleneck. So an entry is
    used only with its known keys, written by this plumber version, its
    bandwidth a finite number above zero (not a bool) and its time of
    measurement in the past; anything else is measured again.
    """
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        return None
    bandwidth, measured_at = entry["disk_read_bps"], entry["measured_at"]
    if entry["plumber_version"] != __version__ or not isinstance(entry["path"], str):
        return None
    if not all(_finite_positive(v) for v in (bandwidth, measured_at)):
        return None
    return float(bandwidth) if measured_at <= time.time() else None


def _finite_positive(value: Any) -> bool:
    """A JSON number (not a bool) above zero and small enough for a profile (NaN is not)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < value <= MAX_MAGNITUDE)


def _same_host_other_boot(key: str, prefix: str) -> bool:
    """Whether ``key`` is a stale entry of this host from an earlier boot (dropped)."""
    host = prefix.split("|", 1)[0] + "|"
    return key.startswith(host) and not key.startswith(prefix)


def _read_cache(store: Path) -> dict[str, Any]:
    """The cache's entries; a missing, corrupt or untrusted file reads as empty.

    Measurements are read back only from a private folder and file (owned by
    this user, writable by no one else: :func:`plumber.records.folders.folder_problem`);
    one that someone else could have written is measured again instead.
    """
    try:
        if folder_problem(os.stat(store.parent)) is not None:
            return {}
        with open(store, encoding="utf-8") as handle:
            if not private_file(os.fstat(handle.fileno())):
                return {}
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(store: Path, entries: dict[str, Any]) -> None:
    """Replace the cache atomically; failing to write only costs a re-measurement."""
    try:
        store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".capacity-", dir=store.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=1)
        os.replace(tmp, store)
    except OSError:
        return


# -- the Machine record --------------------------------------------------------


def probe_machine(
    data_paths: Sequence[str], cache_dir: str | Path | None = None, sampler: Any = None
) -> Machine:
    """The Machine record: cores, memory, disk bandwidth of the data, GPUs.

    The disk is probed for the first of ``data_paths`` that exists (None
    when none does). GPU facts come from ``sampler`` (a
    :class:`~plumber.measure.sampler.ResourceSampler`) when given, else from NVML.
    """
    total, available = available_memory()
    disk_bps, probed = None, None
    existing = [p for p in data_paths if os.path.exists(p)]
    if existing:
        probed = str(existing[0])
        disk_bps = cached_read_bandwidth(probed, cache_dir)
    if sampler is not None:
        gpu_status, gpus = sampler.gpu_status, tuple(sampler.gpus)
    else:
        gpu_status, gpus = probe_gpus()
    cache_dir = data_cache_dir()
    return Machine(
        cores_logical=os.cpu_count() or 1,
        cores_usable=usable_cores(),
        memory_total_bytes=total,
        memory_available_bytes=available,
        disk_read_bps=disk_bps,
        disk_probe_path=probed,
        gpus=gpus,
        gpu_status=gpu_status,
        cache_dir=str(cache_dir),
        cache_dir_free_bytes=free_bytes(cache_dir),
    )
