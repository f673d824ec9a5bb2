"""Capacities of the machine: usable cores, memory, cold disk read bandwidth.

The disk probe reads a file after dropping its pages from the page cache
(``posix_fadvise(DONTNEED)``), so it measures the device, not memory. DONTNEED
drops only clean pages, so a file the probe writes is fsynced first. On the
project's 2-core development VM, 64 MiB read in 4 MiB chunks gave about
1.9-2.3 GB/s cold against about 10 GB/s from the page cache.
Results of the disk probe are cached per machine and filesystem (keyed by
host name, boot id and device number) so that it is not re-measured on
every run.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from plumber.record import Machine

_PROBE_BYTES = 64 << 20
_CHUNK = 4 << 20
_CACHE_FILE = "capacity.json"


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float:
    """CPUs this process may use: affinity mask and cgroup CPU quota, whichever is less."""
    cores = float(
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    quota = cgroup_cpu_quota(cgroup_root)
    return min(cores, quota) if quota else cores


def cgroup_cpu_quota(root: Path) -> float | None:
    """CPU quota in cores from cgroup v2 ``cpu.max`` or v1 CFS files, or None."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_memory(cgroup_root: Path = Path("/sys/fs/cgroup")) -> tuple[int, int]:
    """(total, available) bytes, capped by a cgroup memory limit when one is set."""
    memory = psutil.virtual_memory()
    total, available = int(memory.total), int(memory.available)
    limit = _cgroup_memory_limit(cgroup_root)
    if limit is not None and limit < total:
        used = _cgroup_memory_usage(cgroup_root) or 0
        return limit, max(min(available, limit - used), 0)
    return total, available


def _cgroup_memory_limit(root: Path) -> int | None:
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def _cgroup_memory_usage(root: Path) -> int | None:
    for name in ("memory.current", "memory/memory.usage_in_bytes"):
        try:
            return int((root / name).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def measure_read_bandwidth(path: str | Path, probe_bytes: int = _PROBE_BYTES) -> float:
    """Cold sequential read bandwidth (bytes/s) of the filesystem holding ``path``.

    A data file at least ``probe_bytes`` long is read directly; otherwise a
    temporary file of that size is written beside it, synced, and read back.
    Either way its pages are dropped from the page cache first.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size >= probe_bytes:
        return _cold_read(path, probe_bytes)
    directory = path if path.is_dir() else path.parent
    fd, name = tempfile.mkstemp(prefix=".plumber-probe-", dir=directory)
    try:
        block = os.urandom(_CHUNK)
        with os.fdopen(fd, "wb") as handle:
            for _ in range(max(probe_bytes // _CHUNK, 1)):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        return _cold_read(Path(name), probe_bytes)
    finally:
        os.unlink(name)


def _cold_read(path: Path, limit: int) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        start, read = time.perf_counter(), 0
        while read < limit:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            read += len(chunk)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return read / max(elapsed, 1e-9)


def cache_dir() -> Path:
    """``$PLUMBER_CACHE_DIR``, else ``$XDG_CACHE_HOME/plumber``, else ``~/.cache/plumber``."""
    explicit = os.environ.get("PLUMBER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "plumber" if xdg else Path.home() / ".cache" / "plumber"


def _machine_key(path: Path) -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown-boot"
    return f"{socket.gethostname()}|{boot}|dev{os.stat(path).st_dev}"


def cached_read_bandwidth(path: str | Path, directory: Path | None = None) -> float:
    """Cold read bandwidth for ``path``'s filesystem, measured once per machine."""
    path = Path(path)
    store = (directory or cache_dir()) / _CACHE_FILE
    key = _machine_key(path)
    entries = _read_cache(store)
    entry = entries.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("disk_read_bps"), (int, float)):
        return float(entry["disk_read_bps"])
    bandwidth = measure_read_bandwidth(path)
    entries[key] = {"disk_read_bps": bandwidth, "measured_at": time.time(), "path": str(path)}
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(store)
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time
    return bandwidth


def _read_cache(store: Path) -> dict[str, Any]:
    try:
        data = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def probe_machine(
    data_paths: Sequence[str], cache_dir: str | Path | None = None, sampler: Any = None
) -> Machine:
    """The Machine record: cores, memory, disk bandwidth of the data, GPUs."""
    total, available = available_memory()
    disk_bps, probed = None, None
    for candidate in data_paths:
        if os.path.exists(candidate):
            disk_bps = cached_read_bandwidth(candidate, Path(cache_dir) if cache_dir else None)
            probed = str(candidate)
            break
    if sampler is not None:
        gpus, status = tuple(sampler.gpus), sampler.gpu_status
    else:
        from plumber.sampler import ResourceSampler

        probe = ResourceSampler()
        gpus, status = tuple(probe.gpus), probe.gpu_status
    return Machine(
        cores_logical=os.cpu_count() or 1,
        cores_usable=usable_cores(),
        memory_total_bytes=total,
        memory_available_bytes=available,
        disk_read_bps=disk_bps,
        disk_probe_path=probed,
        gpus=gpus,
        gpu_status=status,
    )
