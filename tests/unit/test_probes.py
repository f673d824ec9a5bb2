"""Resource sampler, capacity probes and per-thread CPU, on this machine."""

from __future__ import annotations

import ctypes
import math
import threading
import time

import pytest

from plumber import capacity
from plumber.sampler import ResourceSampler
from plumber.threadcpu import ThreadCpuTracker


def test_sampler_collects_equal_length_series_and_stops_on_exit():
    with ResourceSampler(interval_s=0.05) as sampler:
        time.sleep(0.5)
    series = sampler.series()
    assert 4 <= len(series.t) <= 12
    for name in ("cpu_percent", "process_cpu_percent", "disk_read_bps", "memory_used_bytes",
                 "process_rss_bytes", "per_core_percent"):
        assert len(getattr(series, name)) == len(series.t), name
    assert all(b > a for a, b in zip(series.t, series.t[1:], strict=False))
    assert not any(t.name == "plumber-sampler" for t in threading.enumerate())


def test_sampler_stops_cleanly_when_the_body_raises():
    with pytest.raises(RuntimeError), ResourceSampler(interval_s=0.05):
        raise RuntimeError("boom")
    assert not any(t.name == "plumber-sampler" for t in threading.enumerate())


def test_sampler_thins_old_samples_to_bound_memory():
    with ResourceSampler(interval_s=0.01, max_samples=10) as sampler:
        time.sleep(0.6)
    series = sampler.series()
    assert len(series.t) <= 10
    assert sampler.interval_s > 0.01


def test_sampler_without_a_gpu_records_it_as_absent():
    sampler = ResourceSampler()
    if sampler.gpus:
        pytest.skip("this machine has a GPU")
    assert sampler.gpu_status == "absent" or sampler.gpu_status.startswith("nvml-unavailable")


def _burn_named(name: bytes, seconds: float, burnt: threading.Event,
                release: threading.Event) -> None:
    libc = ctypes.CDLL(None)
    libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    burnt.set()
    release.wait(5)


def test_thread_cpu_is_grouped_by_os_thread_name_and_kept_after_the_thread_exits():
    tracker = ThreadCpuTracker()
    tracker.start()
    burnt, release = threading.Event(), threading.Event()
    worker = threading.Thread(target=_burn_named, args=(b"plumber_burn", 0.3, burnt, release))
    worker.start()
    burnt.wait(5)
    tracker.poll()
    release.set()
    worker.join()
    groups = {g.name: g for g in tracker.stop()}
    assert groups["plumber_burn"].cpu_time_s >= 0.25
    assert groups["plumber_burn"].threads == 1


def test_cgroup_v2_quota_and_v1_quota_are_read(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert capacity.cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert capacity.cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert capacity.cgroup_cpu_quota(v1) == 0.5
    assert capacity.usable_cores(cgroup_root=v1) == 0.5


def test_read_bandwidth_probe_returns_a_finite_rate_and_cleans_up(tmp_path):
    bandwidth = capacity.measure_read_bandwidth(tmp_path, probe_bytes=8 << 20)
    assert math.isfinite(bandwidth) and bandwidth > 1e6
    assert list(tmp_path.iterdir()) == []


def test_disk_probe_is_cached_per_machine(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(capacity, "measure_read_bandwidth", lambda p: calls.append(p) or 123.0)
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 10)
    first = capacity.probe_machine([str(data)], cache_dir=tmp_path / "cache")
    second = capacity.probe_machine([str(data)], cache_dir=tmp_path / "cache")
    assert first.disk_read_bps == second.disk_read_bps == 123.0
    assert len(calls) == 1


def test_corrupt_capacity_cache_is_ignored_and_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "measure_read_bandwidth", lambda p: 7.0)
    store = tmp_path / "cache"
    store.mkdir()
    (store / "capacity.json").write_text("{broken")
    data = tmp_path / "d.bin"
    data.write_bytes(b"x")
    assert capacity.probe_machine([str(data)], cache_dir=store).disk_read_bps == 7.0
    assert "disk_read_bps" in (store / "capacity.json").read_text()


def test_machine_without_data_paths_has_no_disk_figure(tmp_path):
    machine = capacity.probe_machine([], cache_dir=tmp_path)
    assert machine.disk_read_bps is None
    assert machine.cores_usable >= 1 and machine.memory_available_bytes > 0
