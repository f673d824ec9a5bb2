"""tune's measuring runs, each in a fresh process (plumber/tuner/freshrun.py).

GIVEN a script measured for tune, THEN it runs in a Python process of its
own, its profile comes back, and a
stop from outside (Ctrl-C, SIGTERM) ends the run and is raised again here,
leaving no process behind; a child that leaves no result is a one-line
error, not a measurement. (The plan in force in such a run:
tests/integration/test_tune_measuring_runs.py.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from plumber.capture.session import SessionOptions
from plumber.measure.runbounds import Terminated
from plumber.tuner import freshrun

SCRIPT = """\
import os, sys, time
from pathlib import Path
out = Path(sys.argv[1])
out.write_text(f"{os.getpid()} {' '.join(sys.argv[2:])}")
if "--sleep" in sys.argv:
    time.sleep(60)
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def written(path: Path, timeout_s: float = 30.0) -> str:
    """What the script wrote to ``path``, once it has."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"the script never wrote {path}")


def test_a_measuring_run_is_a_fresh_process_whose_profile_comes_back(script, tmp_path):
    out = tmp_path / "ran.txt"
    profile = freshrun.fresh_profile(script, [str(out), "a", "b"],
                                        SessionOptions(net_probe_s=0.0))
    pid, args = written(out).split(" ", 1)
    assert int(pid) != os.getpid() and args == "a b"
    assert profile.run.exit_status == 0
    assert profile.run.command == (str(script), str(out), "a", "b")


@pytest.mark.parametrize("signum, raised", [(signal.SIGTERM, Terminated),
                                            (signal.SIGINT, KeyboardInterrupt)])
def test_a_stop_from_outside_ends_the_run_and_is_raised_again(script, tmp_path, signum, raised):
    out = tmp_path / "ran.txt"

    def stop_once_running() -> None:
        child = int(written(out).split()[0])
        os.kill(os.getpid(), signum)
        stopped.append(child)

    stopped: list[int] = []
    threading.Thread(target=stop_once_running, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(raised):
        freshrun.fresh_profile(script, [str(out), "--sleep"], SessionOptions(net_probe_s=0.0))
    assert time.monotonic() - start < 30  # the 60 s sleep was cut short
    [child] = stopped
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_a_child_that_leaves_no_result_is_a_failed_run(script, tmp_path, monkeypatch):
    monkeypatch.setattr(freshrun.sys, "executable", "/bin/false")
    with pytest.raises(freshrun.MeasuringRunFailed, match="ended without its profile"):
        freshrun.fresh_profile(script, [str(tmp_path / "x")], SessionOptions())
