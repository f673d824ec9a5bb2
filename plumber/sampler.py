"""Sample the machine while a profiled script runs.

A daemon thread takes one sample every ``interval_s`` with psutil: machine
and per-core CPU, this process's CPU (children included, for DataLoader
workers and the like), disk read and network throughput, memory and RSS,
and GPU utilisation and memory through NVML when a GPU is present. Long runs
stay bounded in memory: past ``max_samples`` every other sample is dropped
and the interval doubles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from plumber.record import TimeSeries
from plumber.threadcpu import name_os_thread

_FIELDS = (
    "t", "cpu_percent", "per_core_percent", "process_cpu_percent", "disk_read_bps",
    "net_recv_bps", "net_sent_bps", "memory_used_bytes", "process_rss_bytes",
    "gpu_util_percent", "gpu_memory_used_bytes",
)


#: Re-list child processes every this many samples.
_CHILD_SCAN_EVERY = 8

#: NVML errors that simply mean there is no NVIDIA GPU on this machine.
_NO_GPU_MESSAGES = ("Library Not Found", "Driver Not Loaded", "No Devices", "No such file")


class _Nvml:
    """NVML handles when a GPU is usable; records why not otherwise."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.status = "absent"
        self.gpus: list[dict[str, Any]] = []
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception as exc:  # noqa: BLE001 - NVML's errors have no common base we can rely on
            message = str(exc)
            no_gpu = any(m in message for m in _NO_GPU_MESSAGES) or not message
            self.status = "absent" if no_gpu else f"nvml-unavailable: {message}"
            return
        self._pynvml = pynvml
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            self.handles.append(handle)
            self.gpus.append({
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_total_bytes": int(memory.total),
            })
        self.status = "present" if self.handles else "absent"

    def sample(self) -> tuple[float, float] | None:
        """Mean utilisation % and total used memory over all GPUs."""
        if not self.handles:
            return None
        util, used = 0.0, 0.0
        for handle in self.handles:
            util += self._pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            used += self._pynvml.nvmlDeviceGetMemoryInfo(handle).used
        return util / len(self.handles), used


class ResourceSampler:
    """Context manager sampling resources on a background thread."""

    def __init__(
        self,
        interval_s: float = 0.25,
        max_samples: int = 4000,
        on_sample: Callable[[], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.on_sample = on_sample
        self._columns: dict[str, list[Any]] = {name: [] for name in _FIELDS}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()
        self._children: dict[int, psutil.Process] = {}
        self._samples_taken = 0
        self._nvml = _Nvml()

    @property
    def gpu_status(self) -> str:
        return self._nvml.status

    @property
    def gpus(self) -> list[dict[str, Any]]:
        return list(self._nvml.gpus)

    def __enter__(self) -> ResourceSampler:
        self._start = time.monotonic()
        psutil.cpu_percent(percpu=True)
        self._process.cpu_percent()
        self._last_io = (time.monotonic(), _disk_read_bytes(), psutil.net_io_counters())
        self._thread = threading.Thread(target=self._run, name="plumber-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        name_os_thread("plumber-sampler")
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except (psutil.Error, OSError):
                continue
            if self.on_sample is not None:
                self.on_sample()

    def _sample(self) -> None:
        now = time.monotonic()
        per_core = psutil.cpu_percent(percpu=True)
        disk_read, net = _disk_read_bytes(), psutil.net_io_counters()
        last_time, last_disk, last_net = self._last_io
        elapsed = max(now - last_time, 1e-6)
        self._last_io = (now, disk_read, net)
        gpu = self._nvml.sample()
        row = {
            "t": now - self._start,
            "cpu_percent": sum(per_core) / max(len(per_core), 1),
            "per_core_percent": tuple(per_core),
            "process_cpu_percent": self._process_cpu_percent(),
            "disk_read_bps": max(disk_read - last_disk, 0) / elapsed,
            "net_recv_bps": _delta(net, last_net, "bytes_recv") / elapsed,
            "net_sent_bps": _delta(net, last_net, "bytes_sent") / elapsed,
            "memory_used_bytes": float(psutil.virtual_memory().used),
            "process_rss_bytes": float(self._process.memory_info().rss),
        }
        if gpu is not None:
            row["gpu_util_percent"], row["gpu_memory_used_bytes"] = gpu
        with self._lock:
            for name, value in row.items():
                self._columns[name].append(value)
            if len(self._columns["t"]) > self.max_samples:
                self._thin()

    def _process_cpu_percent(self) -> float:
        """This process plus its children (worker processes), in % of one core."""
        total = self._process.cpu_percent()
        self._samples_taken += 1
        if self._samples_taken % _CHILD_SCAN_EVERY == 1:
            # Listing children scans all of /proc: do it only now and then.
            try:
                children = self._process.children(recursive=True)
            except psutil.Error:
                children = []
        else:
            children = list(self._children.values())
        alive = {}
        for child in children:
            known = self._children.get(child.pid, child)
            try:
                total += known.cpu_percent()
            except psutil.Error:
                continue
            alive[child.pid] = known
        self._children = alive
        return total

    def _thin(self) -> None:
        for name, values in self._columns.items():
            self._columns[name] = values[::2]
        self.interval_s *= 2

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
