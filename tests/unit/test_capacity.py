"""Capacity probes: cgroup limits on fake files, the disk probe, its per-machine cache."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from plumber.measure import capacity

GiB = 1 << 30


def _cgroup(tmp_path: Path, proc_lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake cgroup mount and a fake /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text(proc_lines)
    return root, proc


# -- cores ---------------------------------------------------------------------


def test_cgroup_v2_cpu_max_gives_the_quota_in_cores(tmp_path):
    root, proc = _cgroup(tmp_path, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert capacity.cgroup_cpu_quota(root, proc) == 1.5


def test_cgroup_v2_without_a_limit_has_no_quota(tmp_path):
    root, proc = _cgroup(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert capacity.cgroup_cpu_quota(root, proc) is None


def test_the_tightest_quota_among_the_process_cgroup_and_its_ancestors_wins(tmp_path):
    root, proc = _cgroup(
        tmp_path,
        "0::/slice/job\n",
        {"slice/job/cpu.max": "400000 100000", "slice/cpu.max": "50000 100000"},
    )
    assert capacity.cgroup_cpu_quota(root, proc) == 0.5


def test_cgroup_v1_cfs_quota_is_read_from_the_cpu_hierarchy(tmp_path):
    files = {
        "cpu,cpuacct/cpu.cfs_quota_us": "250000\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    }
    root, proc = _cgroup(tmp_path, "4:cpu,cpuacct:/\n1:name=systemd:/\n", files)
    assert capacity.cgroup_cpu_quota(root, proc) == 2.5


def test_cgroup_v1_unlimited_quota_is_no_quota(tmp_path):
    files = {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}
    root, proc = _cgroup(tmp_path, "4:cpu:/\n", files)
    assert capacity.cgroup_cpu_quota(root, proc) is None


def test_usable_cores_is_the_smaller_of_affinity_and_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tight, proc = _cgroup(tmp_path / "a", "0::/\n", {"cpu.max": "50000 100000"})
    assert capacity.usable_cores(tight, proc) == 0.5
    loose, proc = _cgroup(tmp_path / "b", "0::/\n", {"cpu.max": "100000000 100000"})
    assert capacity.usable_cores(loose, proc) == affinity


def test_unreadable_cgroup_files_fall_back_to_affinity(tmp_path):
    root, proc = _cgroup(tmp_path, "garbage without colons\n", {"cpu.max": "not numbers"})
    assert capacity.usable_cores(root, proc) >= 1


# -- memory ----------------------------------------------------------------------


def test_a_cgroup_memory_limit_below_physical_memory_caps_total_and_available(tmp_path):
    files = {"memory.max": str(GiB), "memory.current": str(GiB // 4)}
    root, proc = _cgroup(tmp_path, "0::/\n", files)
    total, available = capacity.available_memory(root, proc)
    assert total == GiB
    assert 0 <= available <= GiB - GiB // 4


def test_no_memory_limit_reports_the_machine(tmp_path):
    v2, proc = _cgroup(tmp_path / "v2", "0::/\n", {"memory.max": "max\n"})
    v1, proc1 = _cgroup(
        tmp_path / "v1", "5:memory:/\n", {"memory/memory.limit_in_bytes": "9223372036854771712"}
    )
    physical = psutil.virtual_memory().total
    assert capacity.available_memory(v2, proc)[0] == physical
    assert capacity.available_memory(v1, proc1)[0] == physical


# -- disk bandwidth ------------------------------------------------------------------


def test_probing_a_directory_returns_a_finite_rate_and_leaves_nothing_behind(tmp_path):
    bandwidth = capacity.measure_read_bandwidth(tmp_path, probe_bytes=8 << 20)
    assert math.isfinite(bandwidth) and bandwidth > 0
    assert list(tmp_path.iterdir()) == []


def test_a_large_enough_data_file_is_read_in_place(tmp_path, monkeypatch):
    data = tmp_path / "shard.bin"
    data.write_bytes(os.urandom(4 << 20))
    monkeypatch.setattr(capacity, "DIRECT_READ_MIN", 4 << 20)
    written = []
    monkeypatch.setattr(capacity, "_write_probe", lambda *a: written.append(a) or 0)
    assert capacity.measure_read_bandwidth(data, probe_bytes=8 << 20) > 0
    assert written == []


def test_a_small_data_file_is_probed_through_a_file_beside_it(tmp_path):
    data = tmp_path / "tiny.bin"
    data.write_bytes(b"x" * 100)
    assert capacity.measure_read_bandwidth(data, probe_bytes=2 << 20) > 0
    assert list(tmp_path.iterdir()) == [data]


# -- the per-machine cache ---------------------------------------------------------


@pytest.fixture
def counted_measure(monkeypatch):
    calls: list[str] = []

    def fake_measure(path):
        calls.append(str(path))
        return 123e6

    monkeypatch.setattr(capacity, "measure_read_bandwidth", fake_measure)
    return calls


@pytest.fixture
def data_file(tmp_path) -> Path:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 10)
    return data


def test_the_disk_is_measured_once_and_then_read_from_the_cache(
    tmp_path, counted_measure, data_file
):
    first = capacity.probe_machine([str(data_file)], cache_dir=tmp_path / "cache")
    second = capacity.probe_machine([str(data_file)], cache_dir=tmp_path / "cache")
    assert first.disk_read_bps == second.disk_read_bps == 123e6
    assert second.disk_probe_path == str(data_file)
    assert len(counted_measure) == 1


@pytest.mark.parametrize("loosen", ["folder", "file"])
def test_measurements_others_could_have_written_are_measured_again(
    tmp_path, counted_measure, data_file, loosen
):
    cache = tmp_path / "cache"
    capacity.cached_read_bandwidth(data_file, cache)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    loosened = cache if loosen == "folder" else cache / "capacity.json"
    os.chmod(loosened, os.stat(loosened).st_mode | stat.S_IWOTH)
    capacity.cached_read_bandwidth(data_file, cache)
    assert len(counted_measure) == 2
    os.chmod(loosened, os.stat(loosened).st_mode & ~stat.S_IWOTH)
    capacity.cached_read_bandwidth(data_file, cache)
    assert len(counted_measure) == 2  # private again: the rewritten entry is read


def test_a_new_boot_measures_again_and_drops_the_old_boots_entry(
    tmp_path, monkeypatch, counted_measure, data_file
):
    boot_id = tmp_path / "boot_id"
    monkeypatch.setattr(capacity, "BOOT_ID", boot_id)
    cache = tmp_path / "cache"
    for boot in ("boot-a", "boot-b"):
        boot_id.write_text(boot)
        capacity.cached_read_bandwidth(data_file, cache)
    assert len(counted_measure) == 2
    keys = list(json.loads((cache / "capacity.json").read_text()))
    assert len(keys) == 1 and "|boot-b|" in keys[0]


def test_other_hosts_entries_in_a_shared_cache_are_kept(tmp_path, counted_measure, data_file):
    cache = tmp_path / "cache"
    cache.mkdir()
    other = {"other-host|some-boot|dev1": {"disk_read_bps": 5.0}}
    (cache / "capacity.json").write_text(json.dumps(other))
    capacity.cached_read_bandwidth(data_file, cache)
    assert "other-host|some-boot|dev1" in json.loads((cache / "capacity.json").read_text())


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", '{"k": "not an entry"}', ""])
def test_a_corrupt_cache_is_ignored_and_rewritten(tmp_path, counted_measure, data_file, content):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "capacity.json").write_text(content)
    assert capacity.cached_read_bandwidth(data_file, cache) == 123e6
    entries = json.loads((cache / "capacity.json").read_text())
    assert any(e.get("disk_read_bps") == 123e6 for e in entries.values() if isinstance(e, dict))


def test_an_unwritable_cache_only_costs_a_measurement(tmp_path, counted_measure, data_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert capacity.cached_read_bandwidth(data_file, blocker / "cache") == 123e6


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PLUMBER_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert capacity.default_cache_dir() == Path.home() / ".cache" / "plumber"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert capacity.default_cache_dir() == tmp_path / "xdg" / "plumber"
    monkeypatch.setenv("PLUMBER_CACHE_DIR", str(tmp_path / "explicit"))
    assert capacity.default_cache_dir() == tmp_path / "explicit"


# -- the Machine record -----------------------------------------------------------


def test_machine_without_existing_data_paths_has_no_disk_figure(tmp_path, counted_measure):
    machine = capacity.probe_machine([str(tmp_path / "missing.tfrecord")], cache_dir=tmp_path)
    assert machine.disk_read_bps is None and machine.disk_probe_path is None
    assert counted_measure == []
    assert machine.cores_logical >= 1 and 0 < machine.cores_usable <= machine.cores_logical
    assert 0 < machine.memory_available_bytes <= machine.memory_total_bytes


def test_machine_takes_the_first_existing_path_and_gpu_facts_from_the_sampler(
    tmp_path, counted_measure, data_file
):
    sampler = SimpleNamespace(
        gpu_status="present", gpus=[{"name": "Fake", "memory_total_bytes": 1}]
    )
    machine = capacity.probe_machine(
        [str(tmp_path / "missing"), str(data_file)], cache_dir=tmp_path / "c", sampler=sampler
    )
    assert machine.disk_probe_path == str(data_file)
    assert machine.gpu_status == "present"
    assert machine.gpus == ({"name": "Fake", "memory_total_bytes": 1},)


@pytest.mark.parametrize("bad", [
    {"disk_read_bps": True},
    {"disk_read_bps": 0},
    {"disk_read_bps": -5.0},
    {"disk_read_bps": "fast"},
    {"disk_read_bps": 10**400},
    {"disk_read_bps": None},
    {"disk_read_bps": [1]},
    {"plumber_version": "0.0.1"},
    {"measured_at": 4e18},
    {"extra": 1},
], ids=lambda bad: "-".join(f"{k}={str(v)[:8]}" for k, v in bad.items()))
def test_a_bad_cache_entry_is_never_trusted_but_measured_again_and_rewritten(
    tmp_path, counted_measure, data_file, bad
):
    """GIVEN this machine's cache entry with one bad field (``true`` once read as 1 B/s)."""
    cache = tmp_path / "cache"
    capacity.cached_read_bandwidth(data_file, cache)
    store = cache / "capacity.json"
    (key, entry), = json.loads(store.read_text()).items()
    store.write_text(json.dumps({key: {**entry, **bad}}))
    assert capacity.cached_read_bandwidth(data_file, cache) == 123e6
    assert len(counted_measure) == 2
    rewritten = json.loads(store.read_text())[key]
    assert rewritten["disk_read_bps"] == 123e6 and set(rewritten) == set(entry)


def test_a_valid_cache_entry_nan_written_as_a_literal_is_measured_again(
    tmp_path, counted_measure, data_file
):
    cache = tmp_path / "cache"
    capacity.cached_read_bandwidth(data_file, cache)
    store = cache / "capacity.json"
    store.write_text(store.read_text().replace("123000000.0", "NaN"))
    assert capacity.cached_read_bandwidth(data_file, cache) == 123e6
    assert len(counted_measure) == 2
