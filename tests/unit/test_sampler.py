"""The resource sampler: series shape, clean stop, bounded memory, GPU via NVML."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import threading
import time
from collections import namedtuple
from types import SimpleNamespace

import pytest

from plumber.measure import poller as poller_module
from plumber.measure import sampler as sampler_module
from plumber.measure.sampler import ResourceSampler, cpu_busy_percent, probe_gpus
from plumber.records.profile import TimeSeries

_GPU_COLUMNS = ("gpu_util_percent", "gpu_memory_used_bytes")
_HOST_COLUMNS = tuple(
    f.name for f in dataclasses.fields(TimeSeries) if f.name not in _GPU_COLUMNS
)


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plumber-sampler"]


def _assert_rectangular(series: TimeSeries, gpu: bool) -> None:
    for name in _HOST_COLUMNS:
        assert len(getattr(series, name)) == len(series.t), name
    for name in _GPU_COLUMNS:
        assert len(getattr(series, name)) == (len(series.t) if gpu else 0), name


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without NVML and without an NVIDIA driver, whatever this one has."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(sampler_module, "_nvidia_driver_present", lambda: False)


def test_one_second_at_the_default_interval_gives_about_four_equal_length_samples(no_gpu):
    with ResourceSampler() as sampler:
        time.sleep(1.0)
    series = sampler.series()
    assert 3 <= len(series.t) <= 5
    _assert_rectangular(series, gpu=False)
    assert all(0 < a < b for a, b in zip(series.t, series.t[1:], strict=False))
    assert series.t[-1] <= 1.1
    assert all(0.0 <= v <= 100.0 for v in series.cpu_percent)
    assert all(len(cores) == len(series.per_core_percent[0]) for cores in series.per_core_percent)
    assert all(rss > 0 for rss in series.process_rss_bytes)
    assert not _sampler_threads()


def test_sampler_thread_stops_when_the_body_raises(no_gpu):
    with pytest.raises(RuntimeError), ResourceSampler(interval_s=0.02):
        time.sleep(0.05)
        raise RuntimeError("boom")
    assert not _sampler_threads()


def test_long_runs_are_thinned_to_max_samples_keeping_an_even_spacing(no_gpu):
    with ResourceSampler(interval_s=0.01, max_samples=10) as sampler:
        time.sleep(0.6)
    series = sampler.series()
    assert 2 <= len(series.t) <= 10
    assert sampler.interval_s >= 0.04
    _assert_rectangular(series, gpu=False)
    gaps = [b - a for a, b in zip(series.t, series.t[1:], strict=False)]
    # Halving leaves no holes: consecutive samples stay about one interval apart.
    assert max(gaps) < 3 * sampler.interval_s


def test_on_sample_runs_each_sample_and_a_failing_hook_does_not_stop_sampling(no_gpu):
    calls = []

    def flaky_hook() -> None:
        calls.append(1)
        raise ValueError("hook bug")

    with ResourceSampler(interval_s=0.02, on_sample=flaky_hook) as sampler:
        time.sleep(0.3)
    assert len(calls) >= 5
    assert len(sampler.series().t) == len(calls)


def _process_cpu_beside_a_busy_child(ignore_it: bool) -> float:
    """Mean process CPU sampled while a child burns a core and this process sleeps."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.1)
        with ResourceSampler(interval_s=0.1) as sampler:
            if ignore_it:
                sampler.ignore_process(child.pid)
            time.sleep(0.8)
    finally:
        child.kill()
        child.wait()
    samples = sampler.series().process_cpu_percent[1:]
    return sum(samples) / len(samples)


def test_process_cpu_includes_child_processes(no_gpu):
    # The process figure (100 per busy core) carries the child's work.
    assert _process_cpu_beside_a_busy_child(ignore_it=False) > 25


def test_a_child_process_of_plumbers_own_is_left_out_of_the_process_cpu(no_gpu):
    # Named as plumber's own (as py-spy is), its work is not counted: this process only sleeps.
    assert _process_cpu_beside_a_busy_child(ignore_it=True) < 15


def test_busy_share_follows_psutil_accounting():
    Times = namedtuple("Times", "user nice system idle iowait guest guest_nice")
    before = Times(100, 0, 50, 800, 50, 0, 0)
    # 40 user (10 of it guest, already inside user), 10 system, 30 idle, 20 iowait.
    after = Times(140, 0, 60, 830, 70, 10, 0)
    assert cpu_busy_percent(before, after) == pytest.approx(50.0)
    assert cpu_busy_percent(after, after) == 0.0


# -- GPUs, through a fake NVML ------------------------------------------------


def _fake_nvml(util=(30, 50), used=(1e9, 2e9), init_error=None, read_error=None):
    calls = {"shutdown": 0}

    def init():
        if init_error:
            raise init_error

    def shutdown():
        calls["shutdown"] += 1

    def utilisation(index):
        if read_error:
            raise read_error
        return SimpleNamespace(gpu=util[index])

    fake = SimpleNamespace(
        nvmlInit=init,
        nvmlShutdown=shutdown,
        nvmlDeviceGetCount=lambda: len(util),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetName=lambda index: b"Fake GPU %d" % index,
        nvmlDeviceGetMemoryInfo=lambda index: SimpleNamespace(total=16e9, used=used[index]),
        nvmlDeviceGetUtilizationRates=utilisation,
        calls=calls,
    )
    return fake


def test_gpu_columns_are_sampled_when_nvml_sees_gpus(monkeypatch):
    fake = _fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with ResourceSampler(interval_s=0.02) as sampler:
        time.sleep(0.15)
    series = sampler.series()
    assert sampler.gpu_status == "present"
    assert sampler.gpus == [
        {"name": "Fake GPU 0", "memory_total_bytes": 16_000_000_000},
        {"name": "Fake GPU 1", "memory_total_bytes": 16_000_000_000},
    ]
    _assert_rectangular(series, gpu=True)
    assert set(series.gpu_util_percent) == {40.0}
    assert set(series.gpu_memory_used_bytes) == {3e9}
    assert fake.calls["shutdown"] == 1


def test_a_gpu_that_stops_answering_leaves_gaps_not_ragged_columns(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(read_error=RuntimeError("GPU lost")))
    with ResourceSampler(interval_s=0.02) as sampler:
        time.sleep(0.1)
    series = sampler.series()
    _assert_rectangular(series, gpu=True)
    assert series.t and all(math.isnan(v) for v in series.gpu_util_percent)


def test_missing_nvml_library_without_a_driver_is_absent(monkeypatch, no_gpu):
    error = RuntimeError("NVML Shared Library Not Found")
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(init_error=error))
    assert probe_gpus() == ("absent", ())
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert probe_gpus() == ("absent", ())


def test_a_broken_nvml_setup_is_reported_with_its_reason(monkeypatch):
    error = RuntimeError("Driver/library version mismatch")
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(init_error=error))
    status, gpus = probe_gpus()
    assert status == "nvml-unavailable: Driver/library version mismatch"
    assert gpus == ()


def test_a_driver_without_nvidia_ml_py_is_not_called_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(sampler_module, "_nvidia_driver_present", lambda: True)
    status, _ = probe_gpus()
    assert status.startswith("nvml-unavailable") and "nvidia-ml-py" in status


def test_after_a_stall_the_next_sample_comes_an_interval_later_not_at_once(monkeypatch, no_gpu):
    """On a fake clock: the wait meant to end at 0.5 s wakes at 1.4 s (a starved thread)."""
    clock = [0.0]
    taken: list[float] = []
    oversleep = {1: 0.9}  # the second wait wakes 0.9 s late

    class Stop:
        waits = 0

        def wait(self, timeout: float) -> bool:
            clock[0] += max(timeout, 0.0) + oversleep.get(self.waits, 0.0)
            self.waits += 1
            return len(taken) == 4

    monkeypatch.setattr(poller_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(poller_module, "name_os_thread", lambda name: None)
    sampler = ResourceSampler(interval_s=0.25)
    sampler._poller._origin, sampler._poller._stop = 0.0, Stop()
    monkeypatch.setattr(sampler, "_sample", lambda: taken.append(clock[0]))
    sampler._poller._run()
    assert taken == pytest.approx([0.25, 1.4, 1.65, 1.9])
