"""Hostile command lines outside issue 13's list: each is a one-line refusal or a normal run.

Faults this reproduces: ``--cpu-probe inf`` measured an endless stage
forever after the run (the profile was never written); a script whose file
name (or an argument) is not UTF-8 ended ``plumber profile`` with a
UnicodeEncodeError traceback and exit 70 while writing the report; an
output that was a FIFO (or, run as root, ``-o /dev/null``) was replaced by a
regular file.
"""

from __future__ import annotations

import io
import math
import os
import stat
import sys

import pytest
from synthetic_profiles import make_profile, stage

from plumber.capture.stdio import write_now
from plumber.cli import main
from plumber.records import exitcodes
from plumber.records.profile import Profile


@pytest.mark.parametrize(("option", "value", "reason"), [
    ("--cpu-probe", "inf", "must be zero or a positive finite number"),
    ("--cpu-probe", "nan", "must be zero or a positive finite number"),
    ("--duration", "inf", "must be a positive finite number"),
    ("--duration", "-inf", "must be a positive finite number"),
])
@pytest.mark.parametrize("command", ["profile", "tune", "gate"])
def test_a_bound_that_is_not_finite_is_a_usage_error(tmp_path, capsys, command, option, value,
                                                     reason):
    script = tmp_path / "never_run.py"
    script.write_text("raise SystemExit('the script ran')\n")
    extra = ["--baseline", str(tmp_path / "b.json")] if command == "gate" else []
    with pytest.raises(SystemExit) as exit_:
        main([command, *extra, f"{option}={value}", str(script)])
    assert exit_.value.code == exitcodes.USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert f"argument {option}: {reason}" in line


def test_a_script_name_and_argument_that_are_not_utf8_are_recorded_and_reported(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLUMBER_CACHE_DIR", str(tmp_path / "cache"))
    # How Python sees the bytes b"train\xff.py" and b"--tag=\xfe" (surrogateescape).
    name, argument = os.fsdecode(b"train\xff.py"), os.fsdecode(b"--tag=\xfe")
    script = tmp_path / name
    script.write_text("import sys\nassert len(sys.argv) == 2\n")
    out = tmp_path / "out"
    code = main(["profile", "--cpu-probe", "0", "-o", str(out), str(script), "--", argument])
    assert code == 0, capsys.readouterr().err
    assert Profile.load(out / "profile.json").run.command == (str(script), argument)
    report = (out / "report.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "train\\udcff.py" in report


def test_a_line_naming_a_path_that_is_not_utf8_is_escaped_on_a_strict_stream():
    """stdout under PYTHONIOENCODING=utf-8 refuses lone surrogates; report's summary names paths."""
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8", errors="strict")
    name = os.fsdecode(b"runs/d\xff/report.html")
    write_now(stream, f"Report:  {name} ok\n")
    assert buffer.getvalue() == b"Report:  runs/d\\udcff/report.html ok\n"


def test_an_output_that_is_a_pipe_is_refused_and_left_as_it_is(tmp_path, capsys):
    """The report was renamed over a FIFO given as -o (as root, -o /dev/null would go too)."""
    profile = make_profile(stage("source-0", "source", 100, 0.1), wait_s=0.5, step_s=0.1)
    saved = profile.save(tmp_path / "p.json")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["report", str(saved), "-o", str(fifo)]) == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == (
        f"plumber: error: the report would replace {fifo}, which is not a regular file "
        f"(a device, pipe or socket); give a file name")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_run_file_that_is_a_pipe_is_refused_before_the_script_runs(tmp_path, capsys):
    script = tmp_path / "never_run.py"
    script.write_text("raise SystemExit('the script ran')\n")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "report.html")
    assert main(["profile", "-o", str(out), str(script)]) == exitcodes.USAGE
    assert "which is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(out / "report.html").st_mode)
    assert not (out / "profile.json").exists()


@pytest.mark.parametrize("command", ["profile", "tune", "gate"])
def test_a_device_given_as_the_script_is_refused(tmp_path, capsys, command):
    """``plumber profile /dev/zero`` read the device until the kernel killed the run."""
    extra = ["--baseline", str(tmp_path / "b.json")] if command == "gate" else []
    assert main([command, *extra, "/dev/zero"]) == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == (
        "plumber: error: /dev/zero is a device or socket, not a Python script")


@pytest.mark.parametrize("given", [1, 2])
def test_a_profile_read_from_a_pipe_needs_an_output_path(tmp_path, capsys, given):
    """``plumber report /dev/stdin`` wrote report.html beside it: into /dev when run as root."""
    profile = make_profile(stage("source-0", "source", 100, 0.1), wait_s=0.5, step_s=0.1)
    saved = profile.save(tmp_path / "p.json")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # never opened: the refusal comes before the pipe is read
    assert main(["report", *[str(saved)] * (given - 1), str(fifo)]) == exitcodes.USAGE
    name = "report.html" if given == 1 else "hosts-report.html"
    assert capsys.readouterr().err.strip() == (
        f"plumber: error: {fifo} is not a regular file (a pipe or a device), so no folder "
        f"holds it to write {name} in; give the report's path with -o")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "pipe.json"]


def test_an_output_name_too_long_or_a_loop_of_links_is_refused_before_the_run(tmp_path, capsys):
    """A name too long for the filesystem crashed the output check (exit 70, a traceback)."""
    script = tmp_path / "never_run.py"
    script.write_text("raise SystemExit('the script ran')\n")
    too_long = tmp_path / ("a" * 300)
    assert main(["profile", "-o", str(too_long), str(script)]) == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == (
        f"plumber: error: cannot use {too_long} for the output folder: File name too long")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    saved = make_profile(stage("source-0", "source", 100, 0.1), wait_s=0.5, step_s=0.1).save(
        tmp_path / "p.json")
    assert main(["report", str(saved), "-o", str(tmp_path / "loop1")]) == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == (
        f"plumber: error: cannot use {tmp_path / 'loop1'} for the report: Too many levels of "
        f"symbolic links")


@pytest.mark.parametrize(("args", "reason"), [
    (["profile", "{long}.py"], "cannot use {long}.py as the script: File name too long"),
    (["tune", "{long}.py"], "cannot use {long}.py as the script: File name too long"),
    (["report", "{long}.json"], "cannot use {long}.json for a profile: File name too long"),
    (["gate", "--baseline", "b.json", "{long}.json"],
     "cannot use {long}.json for the profile: File name too long"),
])
def test_an_input_name_too_long_is_a_one_line_error(tmp_path, monkeypatch, capsys, args,
                                                     reason):
    """A name too long for the filesystem raised OSError from the input checks (exit 70)."""
    monkeypatch.chdir(tmp_path)
    long = "a" * 300
    assert main([arg.format(long=long) for arg in args]) == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == f"plumber: error: {reason.format(long=long)}"


@pytest.mark.parametrize(("code", "status"),
                         [("2**70", 255), ("-1", 255), ("256", 0), ("True", 1), ("3", 3)])
def test_the_recorded_exit_status_is_the_one_python_exits_with(tmp_path, code, status):
    from plumber.capture.scriptrun import run_script

    script = tmp_path / "exits.py"
    script.write_text(f"import sys\nsys.exit({code})\n")
    assert run_script(script, [], lambda exc: False).exit_status == status


def test_a_huge_exit_code_leaves_a_profile_plumber_can_read_again(tmp_path, monkeypatch):
    """``sys.exit(2**70)`` was recorded as is, and ``plumber report`` refused the profile."""
    monkeypatch.setenv("PLUMBER_CACHE_DIR", str(tmp_path / "cache"))
    script = tmp_path / "exits.py"
    script.write_text("import sys\nsys.exit(2**70)\n")
    out = tmp_path / "out"
    assert main(["profile", "--cpu-probe", "0", "-o", str(out), str(script)]) == 255
    assert main(["report", str(out / "profile.json")]) == exitcodes.OK
    assert Profile.load(out / "profile.json").run.exit_status == 255


#: Leaves the process in a folder it removed.
LEAVES_A_REMOVED_FOLDER = """
import os, tempfile
folder = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(__file__)))
os.chdir(folder)
os.rmdir(folder)
"""


def test_a_script_that_removes_its_working_folder_leaves_plumber_where_it_started(
        tmp_path, monkeypatch):
    """The report (source lines relative to the working folder) and tune failed there."""
    from plumber.capture.scriptrun import run_script

    monkeypatch.chdir(tmp_path)
    script = tmp_path / "leaves.py"
    script.write_text(LEAVES_A_REMOVED_FOLDER)
    assert run_script(script, [], lambda exc: False).exit_status == 0
    assert os.getcwd() == str(tmp_path)


def test_a_source_line_is_shown_as_recorded_when_there_is_no_working_folder(tmp_path,
                                                                           monkeypatch):
    from plumber.records.profile import SourceLocation

    removed = tmp_path / "removed"
    removed.mkdir()
    monkeypatch.chdir(removed)
    removed.rmdir()
    assert str(SourceLocation(str(tmp_path / "train.py"), 3)) == f"{tmp_path / 'train.py'}:3"


@pytest.mark.parametrize(("bounds", "message"), [
    ({"cpu_probe": math.inf}, "cpu_probe must be zero or a positive finite number, got inf"),
    ({"duration": math.inf}, "duration must be a positive finite number, got inf"),
    ({"duration": True}, "duration must be a positive finite number, got True"),
    ({"steps": 2.5}, "steps must be a positive integer, got 2.5"),
])
def test_plumber_profile_in_code_takes_the_same_bounds_as_the_command_line(bounds, message):
    """One rule (plumber.measure.runbounds) for the CLI, the cell magic and plumber.profile."""
    from plumber.capture.inprocess import profile_pipeline

    with pytest.raises(ValueError) as error:
        profile_pipeline(object(), **bounds)
    assert str(error.value) == message


def test_tune_search_without_optuna_is_one_line_before_the_script_runs(tmp_path, monkeypatch,
                                                                        capsys):
    """Without optuna, --search ended in a traceback (exit 70) after the profiling run."""
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    script = tmp_path / "never_run.py"
    script.write_text("raise SystemExit('the script ran')\n")
    assert main(["tune", "--search", "3", "-o", str(tmp_path / "plan.json"),
                 str(script)]) == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == (
        "plumber: error: --search needs optuna: pip install 'plumber-pipelines[tune]'")
    assert not (tmp_path / "profile.json").exists()


def test_gate_checks_each_runs_folder_before_any_run(tmp_path, capsys):
    """A run-N that was a file made that run refuse it, read as 'the script failed' (exit 13)."""
    script = tmp_path / "never_run.py"
    script.write_text("raise SystemExit('the script ran')\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run-2").write_text("not a folder")
    code = main(["gate", "--update", "--baseline", str(tmp_path / "b.json"), "--repeats", "2",
                 "-o", str(runs), str(script)])
    assert code == exitcodes.USAGE
    assert capsys.readouterr().err.strip() == (
        f"plumber: error: the output folder {runs / 'run-2'} exists and is not a folder")
