"""The multi-host report: ``plumber report host0.json host1.json`` and its HTML page.

GIVEN saved profiles of one job's hosts, one with a planted slower map,
THEN the command writes one self-contained page with the hosts side by
side, the slowest named and the map as what differs, and prints the same
verdict; profiles of different jobs, a profile given twice and an output
over an input are one-line usage errors.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from host_profiles import host_profile

from plumber.analyzers.hosts import compare_hosts
from plumber.cli import main
from plumber.records import exitcodes
from plumber.reports.hosts import hosts_summary, render_hosts_html

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def saved_hosts(tmp_path: Path) -> tuple[Path, Path]:
    """``runs/fast.json`` and ``runs/slow.json``: the slow host's map takes twice as long."""
    fast, slow = tmp_path / "runs" / "fast.json", tmp_path / "runs" / "slow.json"
    host_profile(0.004).save(fast)
    host_profile(0.008).save(slow)
    return fast, slow


def test_the_page_puts_the_hosts_side_by_side_and_marks_the_slowest():
    page = render_hosts_html(compare_hosts(["fast", "slow"],
                                           [host_profile(0.004), host_profile(0.008)]))
    assert "2 hosts of one job" in page
    assert re.search(r'<tr class="slowest"><td>slow \(slowest\)</td>', page)
    assert "What differs on slow" in page
    differences = page.split("What differs on slow")[1].split("Stages host by host")[0]
    assert "service time per element" in differences and "map-0 (map at train.py:11)" in differences
    stages = page.split("Stages host by host")[1].split('id="machines"')[0]
    marked = re.findall(r'<tr class="worse"[^>]*><td><code>([^<]+)</code></td><td>([^<]+)</td>',
                        stages)
    assert marked == [("map-0", "service time per element"), ("map-0", "CPU time per element")]
    assert "usable cores" in page.split('id="machines"')[1]


def test_the_page_is_self_contained_and_escapes_what_the_profiles_hold():
    evil = host_profile(0.008)
    evil = dataclasses.replace(evil, run=dataclasses.replace(evil.run, command=(EVIL,)))
    page = render_hosts_html(compare_hosts([EVIL, "b"], [evil, host_profile(0.004)]))
    assert EVIL not in page
    assert "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_the_terminal_lines_name_the_slowest_host_and_what_differs():
    slow = host_profile(0.008, parallelism=1, cores=1.0)
    text = hosts_summary(compare_hosts(["fast", "slow"], [host_profile(0.004), slow]), "r.html")
    lines = text.splitlines()
    assert lines[0].startswith("Pipeline pipeline-0: slow is the slowest host")
    assert " * slow: 11.1/s, bottleneck map-0 (map Map at train.py:11)" in lines
    assert any("service time per element 8 ms on slow against 4 ms on fast" in line
               for line in lines)
    assert lines[-2:] == ["   (1 more difference in the report)", "Report: r.html"]
    assert max(len(line) for line in lines) < 100


def test_report_of_several_profiles_writes_one_hosts_report_where_they_lie(saved_hosts, capsys):
    fast, slow = saved_hosts
    assert main(["report", str(fast), str(slow)]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "slow is the slowest host" in out
    report = fast.parent / "hosts-report.html"
    assert f"Report: {report}" in out
    assert "What differs on slow" in report.read_text()
    assert not (fast.parent / "report.html").exists()


def test_report_of_profiles_of_different_jobs_is_a_one_line_error(saved_hosts, capsys, tmp_path):
    fast, _ = saved_hosts
    other = tmp_path / "other.json"
    host_profile(framework="torch").save(other)
    assert main(["report", str(fast), str(other)]) == exitcodes.USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("plumber: error: other and fast are not profiles of one job")
    assert not (tmp_path / "hosts-report.html").exists()


def test_report_of_one_profile_given_twice_is_a_one_line_error(saved_hosts, capsys):
    fast, _ = saved_hosts
    assert main(["report", str(fast), str(fast)]) == exitcodes.USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"plumber: error: {fast} is given twice: give each host's profile once"


def test_a_hosts_report_over_one_of_its_profiles_is_refused(saved_hosts, capsys):
    fast, slow = saved_hosts
    before = slow.read_bytes()
    assert main(["report", str(fast), str(slow), "-o", str(slow)]) == exitcodes.USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "would overwrite the profile #2" in line
    assert slow.read_bytes() == before


def test_a_hosts_report_goes_where_o_says(saved_hosts, tmp_path, capsys):
    output = tmp_path / "job" / "hosts.html"
    assert main(["report", *map(str, saved_hosts), "-o", str(output)]) == exitcodes.OK
    assert "slow is the slowest host" in output.read_text()


def test_report_help_describes_the_multi_host_report(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "PROFILE.json [PROFILE.json ...]" in text
    assert "names the slowest" in text
    assert "hosts-report.html" in text


def test_a_damaged_host_profile_is_a_one_line_error_naming_it(saved_hosts, capsys):
    fast, slow = saved_hosts
    slow.write_text("{not json")
    assert main(["report", str(fast), str(slow)]) == exitcodes.USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"plumber: error: {slow} is not valid JSON")
    assert not (fast.parent / "hosts-report.html").exists()
