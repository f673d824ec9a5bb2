"""``plumber.compare_hosts``: several hosts' profiles compared in a notebook.

GIVEN one job's profiles as files, records, ProfileResults or a mapping
of names, THEN the result names the slowest host, shows it in Jupyter
(escaped), gives DataFrames and writes the multi-host report.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
from host_profiles import host_profile

import plumber
from plumber.analyzers.hosts import DifferentJobsError
from plumber.notebook import HostsResult, ProfileResult, compare_hosts
from plumber.notebook.hosttables import HOST_COLUMNS

EVIL = "<script>alert(1)</script>"


def test_saved_profiles_are_compared_and_named_by_their_files(tmp_path):
    host_profile(0.004).save(tmp_path / "host0.json")
    host_profile(0.008).save(tmp_path / "host1.json")
    result = compare_hosts(tmp_path / "host0.json", str(tmp_path / "host1.json"))
    assert result.hosts == ("host0", "host1")
    assert result.slowest == {"pipeline-0": "host1"}
    assert str(result).startswith("Pipeline pipeline-0: host1 is the slowest host")
    assert repr(result) == "<HostsResult 2 hosts, slowest pipeline-0: host1>"


def test_records_and_results_are_named_by_position_or_by_a_mapping():
    fast, slow = host_profile(0.004), host_profile(0.008)
    assert compare_hosts(ProfileResult(fast), slow).slowest == {"pipeline-0": "host1"}
    named = compare_hosts({"worker-a": slow, "worker-b": ProfileResult(fast)})
    assert named.hosts == ("worker-a", "worker-b")
    assert named.slowest == {"pipeline-0": "worker-a"}


def test_profiles_of_different_jobs_are_refused():
    with pytest.raises(DifferentJobsError):
        compare_hosts(host_profile(), host_profile(framework="torch"))
    with pytest.raises(ValueError, match="at least two"):
        compare_hosts(host_profile())


def test_the_jupyter_display_names_the_slowest_host_and_escapes_the_profiles():
    slow = host_profile(0.008)
    pipeline = dataclasses.replace(slow.pipelines[0], id=EVIL)
    fast = dataclasses.replace(host_profile(0.004), pipelines=(
        dataclasses.replace(host_profile(0.004).pipelines[0], id=EVIL),))
    shown = compare_hosts({"fast": fast, "slow": dataclasses.replace(
        slow, pipelines=(pipeline,))})._repr_html_()
    assert EVIL not in shown and "&lt;script&gt;" in shown
    assert '<tr style="font-weight:bold"><td style="text-align:left;padding:2px 8px">slow' in shown
    assert "What differs on slow" in shown


def test_the_dataframes_hold_the_hosts_and_the_differences():
    pytest.importorskip("pandas")
    result = compare_hosts({"fast": host_profile(0.004), "slow": host_profile(0.008)})
    table = result.table
    assert list(table.columns) == list(HOST_COLUMNS)
    assert table.set_index("host")["slowest"].to_dict() == {"fast": False, "slow": True}
    assert table.set_index("host")["observed_rate"]["slow"] == pytest.approx(20.0)
    differences = result.differences
    first = differences.iloc[0]
    assert (first["stage"], first["quantity"]) == ("map-0", "service time per element")
    assert (first["fast"], first["slow"]) == pytest.approx((0.004, 0.008))
    assert not math.isnan(first["worse_by"])


def test_the_multi_host_report_is_one_call_away(tmp_path):
    result = compare_hosts({"fast": host_profile(0.004), "slow": host_profile(0.008)})
    path = result.report(tmp_path / "hosts.html")
    assert "What differs on slow" in path.read_text()


def test_compare_hosts_is_on_the_package_and_loads_no_framework():
    assert plumber.compare_hosts is compare_hosts
    assert plumber.HostsResult is HostsResult
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, plumber; plumber.compare_hosts; "
         "print(sorted(m for m in ('tensorflow', 'torch', 'pandas') if m in sys.modules))"],
        capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
