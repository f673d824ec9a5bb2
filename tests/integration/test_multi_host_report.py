"""GIVEN two real ``plumber profile`` runs of one tf.data pipeline, one with a planted
slower map (more rounds per element), WHEN ``plumber report`` gets both profiles,
THEN its one report names the slower run as the slowest host and the map as what
differs on it."""

from __future__ import annotations

import re

import pytest
from conftest import PIPELINES

pytestmark = pytest.mark.slow


def test_report_of_two_hosts_names_the_host_with_the_slower_map(plumber_cli, tmp_path):
    for host, rounds in (("host0", "150"), ("host1", "600")):
        run = plumber_cli("profile", "--cpu-probe", "0", "-o", f"runs/{host}",
                          PIPELINES / "host_map.py", "--", "--rounds", rounds)
        assert run.returncode == 0, run.stderr[-3000:]
    report = plumber_cli("report", "runs/host0/profile.json", "runs/host1/profile.json")
    assert report.returncode == 0, report.stderr[-3000:]
    assert report.stdout.startswith("Pipeline pipeline-0: host1 is the slowest host")
    assert any(line.startswith(" * host1: ") for line in report.stdout.splitlines())
    flat = " ".join(report.stdout.split())
    assert re.search(r" - map-0 \(map at \S*host_map\.py:28\): service time per element "
                     r"\S+ ms on host1 against \S+ ms on host0", flat), flat
    page = (tmp_path / "runs" / "hosts-report.html").read_text()
    assert '<td>host1 (slowest)</td>' in page
