"""Output paths: resolved at start, checked before the script runs, never over an input.

Faults this reproduces: a script that changed folder moved ``-o out`` (the
summary named a path that did not exist); an unwritable or full output
folder was found only after the run, leaving a truncated report;
``plumber report p.json -o p.json`` wrote HTML over the profile; ``-o`` an
existing folder raised IsADirectoryError.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic_profiles import make_profile, stage

from plumber.cli import main
from plumber.records import exitcodes
from plumber.records.files import write_text_atomically

#: A script that leaves a mark when it runs and moves to another folder.
MOVING_SCRIPT = """
import os, pathlib
here = pathlib.Path(__file__).resolve().parent
(here / "ran").write_text("yes")
(here / "elsewhere").mkdir(exist_ok=True)
os.chdir(here / "elsewhere")
"""


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``script.py`` in ``tmp_path``, the working folder (restored after the test)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "script.py"
    path.write_text(MOVING_SCRIPT)
    return path


@pytest.fixture
def saved_profile(tmp_path: Path) -> Path:
    profile = make_profile(stage("source-0", "source", 100, 0.1), stage("map-0", "map", 100, 0.4),
                           wait_s=0.5, step_s=0.1)
    return profile.save(tmp_path / "p.json")


def small_tmpfs(folder: Path, size: str, *options: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``folder`` (skip when mounting is not permitted)."""
    folder.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]),
                            "tmpfs", str(folder)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def full_folder(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs filled to the last byte."""
    for folder in small_tmpfs(tmp_path / "full", "64k"):
        with open(folder / "filler", "wb", buffering=0) as handle, pytest.raises(OSError):
            while True:
                handle.write(b"\0" * 4096)
        yield folder


@pytest.fixture
def nearly_full_folder(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs with 8 KiB left: a small file fits, a report does not."""
    for folder in small_tmpfs(tmp_path / "nearly-full", "64k"):
        (folder / "filler").write_bytes(b"\0" * (56 << 10))
        yield folder


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (chmod cannot stop root; a read-only mount does)."""
    yield from small_tmpfs(tmp_path / "read-only", "64k", "ro")


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plumber: error: "), err
    return lines[0]


# -- plumber profile -----------------------------------------------------------


def test_a_relative_output_folder_stays_where_plumber_started_when_the_script_moves(
    script, tmp_path, capsys
):
    assert main(["profile", "script.py", "-o", "out", "--cpu-probe", "0"]) == 0
    assert (tmp_path / "out" / "profile.json").is_file()
    assert (tmp_path / "out" / "report.html").is_file()
    assert not (tmp_path / "elsewhere" / "out").exists()
    err = capsys.readouterr().err
    named = [line.split(None, 1)[1] for line in err.splitlines()
             if line.startswith(("Report:", "Profile:"))]
    assert len(named) == 2 and all(Path(path).is_file() for path in named)


@pytest.mark.parametrize("folder", ["full_folder", "read_only_folder"])
def test_an_unwritable_output_folder_is_refused_before_the_script_runs(
    script, tmp_path, capsys, request, folder
):
    out = request.getfixturevalue(folder) / "out"
    assert main(["profile", "script.py", "-o", str(out), "--cpu-probe", "0"]) == exitcodes.USAGE
    assert f"cannot write to {out}" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ran").exists()


def test_an_output_folder_that_is_a_file_is_refused_before_the_script_runs(
    script, tmp_path, capsys
):
    (tmp_path / "out").write_text("mine")
    assert main(["profile", "script.py", "-o", "out"]) == exitcodes.USAGE
    assert "is not a folder" in one_error_line(capsys.readouterr().err)
    assert (tmp_path / "out").read_text() == "mine" and not (tmp_path / "ran").exists()


def test_an_output_folder_whose_report_would_replace_the_script_is_refused(tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.html").write_text(MOVING_SCRIPT)
    assert main(["profile", "report.html", "-o", "."]) == exitcodes.USAGE
    assert "would overwrite the script" in one_error_line(capsys.readouterr().err)
    assert (tmp_path / "report.html").read_text() == MOVING_SCRIPT


# -- plumber report ------------------------------------------------------------


def link(kind: str, target: Path) -> Path:
    if kind == "same":
        return target
    path = target.with_name(f"{kind}.json")
    (os.symlink if kind == "symlink" else os.link)(target, path)
    return path


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_a_report_over_its_own_profile_is_refused(saved_profile, capsys, kind):
    before = saved_profile.read_bytes()
    output = link(kind, saved_profile)
    assert main(["report", str(saved_profile), "-o", str(output)]) == exitcodes.USAGE
    assert "would overwrite the profile" in one_error_line(capsys.readouterr().err)
    assert saved_profile.read_bytes() == before


def test_the_default_report_beside_a_profile_named_report_html_is_refused(saved_profile, capsys):
    profile = saved_profile.rename(saved_profile.with_name("report.html"))
    before = profile.read_bytes()
    assert main(["report", str(profile)]) == exitcodes.USAGE
    one_error_line(capsys.readouterr().err)
    assert profile.read_bytes() == before


def test_a_report_into_an_existing_folder_is_a_one_line_error(saved_profile, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    assert main(["report", str(saved_profile), "-o", str(tmp_path / "folder")]) == exitcodes.USAGE
    assert "which is a folder" in one_error_line(capsys.readouterr().err)


def test_a_report_that_does_not_fit_leaves_the_previous_one_whole(
    saved_profile, nearly_full_folder, capsys
):
    report = nearly_full_folder / "report.html"
    report.write_text("previous report")
    assert main(["report", str(saved_profile), "-o", str(report)]) == exitcodes.USAGE
    assert "No space left on device" in one_error_line(capsys.readouterr().err)
    assert report.read_text() == "previous report"
    assert sorted(p.name for p in nearly_full_folder.iterdir()) == ["filler", "report.html"]


def test_an_atomic_write_that_fails_leaves_no_temporary_file(nearly_full_folder):
    target = nearly_full_folder / "big.txt"
    with pytest.raises(OSError):
        write_text_atomically(target, "x" * (64 << 10))
    assert sorted(p.name for p in nearly_full_folder.iterdir()) == ["filler"]


# -- plumber tune --------------------------------------------------------------


@pytest.mark.parametrize(("output", "reason"), [
    ("out/profile.json", "the plan and the profile would both be written to"),
    ("out/report.html", "the plan and the report would both be written to"),
    ("script.py", "would overwrite the script"),
    ("out", "which is a folder"),
])
def test_tune_refuses_a_plan_path_over_another_file_before_the_script_runs(
    script, tmp_path, capsys, output, reason
):
    (tmp_path / "out").mkdir()
    before = script.read_text()
    assert main(["tune", "script.py", "-o", output]) == exitcodes.USAGE
    assert reason in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "ran").exists() and script.read_text() == before


# -- plumber gate --------------------------------------------------------------


def test_gate_update_over_a_file_that_is_not_a_baseline_is_refused(saved_profile, tmp_path,
                                                                    capsys):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": true}')
    for target in (saved_profile, other):
        before = target.read_bytes()
        code = main(["gate", str(saved_profile), "--baseline", str(target), "--update"])
        assert code == exitcodes.USAGE
        one_error_line(capsys.readouterr().err)
        assert target.read_bytes() == before


def test_gate_update_may_replace_a_baseline(saved_profile, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    for _ in range(2):
        assert main(["gate", str(saved_profile), "--baseline", str(baseline), "--update"]) == 0
    assert json.loads(baseline.read_text())["format"] == "plumber-gate-baseline"


@pytest.mark.parametrize("junit", ["profile", "folder"])
def test_gate_junit_xml_over_the_profile_or_into_a_folder_is_refused(
    saved_profile, tmp_path, capsys, junit
):
    path = saved_profile if junit == "profile" else tmp_path
    before = saved_profile.read_bytes()
    code = main(["gate", str(saved_profile), "--baseline", str(tmp_path / "b.json"),
                 "--junit-xml", str(path)])
    assert code == exitcodes.USAGE
    one_error_line(capsys.readouterr().err)
    assert saved_profile.read_bytes() == before
