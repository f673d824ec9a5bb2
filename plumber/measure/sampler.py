"""Sample the machine while a profiled script runs.

A polling thread (:mod:`plumber.measure.poller`) takes one sample every
``interval_s`` with psutil: machine and per-core CPU, this process's CPU
(children included, for DataLoader workers and the like), disk read and
network throughput, memory and RSS, and GPU utilisation and memory through
NVML when a GPU is present. plumber's own helper processes (py-spy, for
``--hotspots``) are children too; :meth:`ResourceSampler.ignore_process`
leaves them out of this process's CPU, which stands for the run's.

It must cost little (the profiler's budget is 5% of throughput on 2 cores):
a sample reads a handful of ``/proc`` files, child processes are re-listed
only every few samples, and CPU percentages are computed from our own
snapshots of ``cpu_times`` rather than psutil's process-global
``cpu_percent`` state, which user code may share. Long runs stay bounded in
memory: past ``max_samples`` every other sample is dropped and the interval
doubles.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from plumber.measure.poller import Poller
from plumber.records.profile import TimeSeries

_FIELDS = tuple(f.name for f in dataclasses.fields(TimeSeries))

#: Re-list child processes every this many samples: listing them scans all of /proc.
_CHILD_SCAN_EVERY = 8

#: NVML errors that mean this machine has no NVIDIA GPU, as opposed to a broken setup.
_NO_GPU_MESSAGES = ("Library Not Found", "Driver Not Loaded", "No Devices", "Not Found")

#: Paths that exist when an NVIDIA driver is loaded, whatever NVML says.
_NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia/gpus", "/dev/nvidia0")

#: Failures of one sample that skip it rather than stop sampling.
_SAMPLE_ERRORS = (psutil.Error, OSError, ValueError)


class _Nvml:
    """NVML handles when a GPU is usable, and the reason when it is not."""

    def __init__(self) -> None:
        self.status = "absent"
        self.gpus: list[dict[str, Any]] = []
        self._handles: list[Any] = []
        self._lib: Any = None
        try:
            lib = importlib.import_module("pynvml")
        except ImportError:
            if _nvidia_driver_present():
                self.status = "nvml-unavailable: nvidia-ml-py is not installed"
            return
        try:
            lib.nvmlInit()
        except Exception as exc:  # pynvml builds its error classes at run time
            self.status = _init_failure_status(str(exc))
            return
        self._lib = lib
        try:
            self._list_devices()
        except Exception as exc:
            self.close()
            self.status, self.gpus = f"nvml-unavailable: {exc}", []
            return
        self.status = "present" if self._handles else "absent"

    def _list_devices(self) -> None:
        for index in range(self._lib.nvmlDeviceGetCount()):
            handle = self._lib.nvmlDeviceGetHandleByIndex(index)
            name = self._lib.nvmlDeviceGetName(handle)
            self._handles.append(handle)
            self.gpus.append({
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_total_bytes": int(self._lib.nvmlDeviceGetMemoryInfo(handle).total),
            })

    @property
    def present(self) -> bool:
        return bool(self._handles)

    def sample(self) -> tuple[float, float]:
        """Mean utilisation % and total used memory over all GPUs; NaN if unreadable."""
        try:
            util = [self._lib.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
            used = [self._lib.nvmlDeviceGetMemoryInfo(h).used for h in self._handles]
        except Exception:  # a GPU lost mid-run must not stop the other sensors
            return math.nan, math.nan
        return sum(util) / len(util), float(sum(used))

    def close(self) -> None:
        if self._lib is not None:
            try:
                self._lib.nvmlShutdown()
            except Exception:  # shutting down is best effort
                pass
            self._lib = None


def _init_failure_status(message: str) -> str:
    no_gpu = not message or any(m in message for m in _NO_GPU_MESSAGES)
    if no_gpu and not _nvidia_driver_present():
        return "absent"
    return f"nvml-unavailable: {message}"


def _nvidia_driver_present() -> bool:
    return any(os.path.exists(path) for path in _NVIDIA_DRIVER_PATHS)


def probe_gpus() -> tuple[str, tuple[dict[str, Any], ...]]:
    """GPU status (``absent``, ``present``, ``nvml-unavailable: ...``) and inventory.

    For the Machine record when no sampler ran.
    """
    nvml = _Nvml()
    nvml.close()
    return nvml.status, tuple(nvml.gpus)


def cpu_busy_percent(before: Any, after: Any) -> float:
    """Busy share, in percent, between two psutil ``cpu_times`` snapshots of one CPU.

    Same accounting as ``psutil.cpu_percent``: guest time is already in
    user time, and iowait counts as idle.
    """
    busy_before, total_before = _busy_and_total(before)
    busy_after, total_after = _busy_and_total(after)
    elapsed = total_after - total_before
    if elapsed <= 0:
        return 0.0
    return min(max((busy_after - busy_before) / elapsed * 100.0, 0.0), 100.0)


def _busy_and_total(times: Any) -> tuple[float, float]:
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class ResourceSampler:
    """Context manager sampling resources on a background thread.

    ``on_sample`` is called on the sampler thread after each sample (the
    session polls per-thread CPU there, so no second thread is needed).
    """

    def __init__(
        self,
        interval_s: float = 0.25,
        max_samples: int = 4000,
        on_sample: Callable[[], None] | None = None,
    ) -> None:
        self._poller = Poller("plumber-sampler", interval_s, self._tick)
        self.max_samples = max(max_samples, 2)
        self.on_sample = on_sample
        self._columns: dict[str, list[Any]] = {name: [] for name in _FIELDS}
        self._lock = threading.Lock()
        self._process = psutil.Process()
        self._children: dict[int, psutil.Process] = {}
        self._ignored: frozenset[int] = frozenset()
        self._samples_taken = 0
        self._nvml = _Nvml()
        self._start = time.monotonic()

    @property
    def interval_s(self) -> float:
        """Seconds between samples: as asked, doubled each time long runs are thinned."""
        return self._poller.interval_s

    @property
    def clock_origin(self) -> float:
        """The ``time.monotonic()`` reading at time 0 of the samples (set on entering).

        A sample's ``t`` is seconds since then, so a moment read with
        ``time.monotonic()`` lies at ``moment - clock_origin`` on the charts' axis.
        """
        return self._start

    @property
    def gpu_status(self) -> str:
        """``absent``, ``present`` or ``nvml-unavailable: <reason>``."""
        return self._nvml.status

    @property
    def gpus(self) -> list[dict[str, Any]]:
        """One ``{"name", "memory_total_bytes"}`` dict per GPU."""
        return [dict(gpu) for gpu in self._nvml.gpus]

    def ignore_process(self, pid: int) -> None:
        """Leave child process ``pid`` (one of plumber's own, such as py-spy) out of the
        process CPU: its work is not the run's, and counted there it would read as the
        script's or its workers'."""
        self._ignored = self._ignored | {pid}

    def __enter__(self) -> ResourceSampler:
        self._start = time.monotonic()
        self._last_cpu = psutil.cpu_times(percpu=True)
        self._process.cpu_percent()
        self._scan_children()
        self._last_io = (self._start, _disk_read_bytes(), psutil.net_io_counters())
        self._poller.start(origin=self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        self._poller.stop()
        self._nvml.close()

    def _tick(self) -> None:
        """One tick of the poller: a sample, then the ``on_sample`` hook."""
        try:
            self._sample()
        except _SAMPLE_ERRORS:
            return
        if self.on_sample is not None:
            try:
                self.on_sample()
            except Exception:  # a failing hook must not end resource sampling
                pass

    def _sample(self) -> None:
        now = time.monotonic()
        cpu = psutil.cpu_times(percpu=True)
        disk_read, net = _disk_read_bytes(), psutil.net_io_counters()
        per_core = tuple(cpu_busy_percent(a, b) for a, b in zip(self._last_cpu, cpu, strict=False))
        last_time, last_disk, last_net = self._last_io
        elapsed = max(now - last_time, 1e-6)
        row = {
            "t": now - self._start,
            "cpu_percent": sum(per_core) / max(len(per_core), 1),
            "per_core_percent": per_core,
            "process_cpu_percent": self._process_cpu_percent(),
            "disk_read_bps": max(disk_read - last_disk, 0) / elapsed,
            "net_recv_bps": _delta(net, last_net, "bytes_recv") / elapsed,
            "net_sent_bps": _delta(net, last_net, "bytes_sent") / elapsed,
            "memory_used_bytes": float(psutil.virtual_memory().used),
            "process_rss_bytes": float(self._process.memory_info().rss),
        }
        if self._nvml.present:
            row["gpu_util_percent"], row["gpu_memory_used_bytes"] = self._nvml.sample()
        # Only a complete row moves the baselines, so every column keeps the same length.
        self._last_cpu, self._last_io = cpu, (now, disk_read, net)
        with self._lock:
            for name, value in row.items():
                self._columns[name].append(value)
            if len(self._columns["t"]) > self.max_samples:
                self._thin()

    def _process_cpu_percent(self) -> float:
        """This process plus its children (worker processes) but the ignored, 100 per busy core."""
        self._samples_taken += 1
        if self._samples_taken % _CHILD_SCAN_EVERY == 0:
            self._scan_children()
        total = self._process.cpu_percent()
        ignored = self._ignored
        for pid, child in list(self._children.items()):
            if pid in ignored:
                continue
            try:
                total += child.cpu_percent()
            except psutil.Error:
                del self._children[pid]
        return total

    def _scan_children(self) -> None:
        """Adopt new child processes; their first interval reads as zero."""
        try:
            children = self._process.children(recursive=True)
        except psutil.Error:
            return
        known = self._children
        self._children = {child.pid: known.get(child.pid, child) for child in children}
        for pid, child in self._children.items():
            if pid not in known:
                try:
                    child.cpu_percent()
                except psutil.Error:
                    continue

    def _thin(self) -> None:
        """Halve the stored samples, keeping the newest, and double the interval."""
        for name, values in self._columns.items():
            self._columns[name] = values[(len(values) - 1) % 2 :: 2]
        self._poller.interval_s *= 2

    def series(self) -> TimeSeries:
        """The samples so far as an immutable TimeSeries."""
        with self._lock:
            return TimeSeries(**{name: tuple(values) for name, values in self._columns.items()})


def _disk_read_bytes() -> int:
    counters = psutil.disk_io_counters()
    return int(counters.read_bytes) if counters is not None else 0


def _delta(now: Any, before: Any, field: str) -> float:
    if now is None or before is None:
        return 0.0
    return float(max(getattr(now, field) - getattr(before, field), 0))
