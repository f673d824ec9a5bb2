"""``plumber gate`` stopped by SIGTERM or SIGHUP (a cancelled CI job) stops its run too.

Each repeat is a ``plumber profile`` child process. Without forwarding, the
gate died and left that run going; now the run gets the same signal, writes
the profile of what ran, and the gate exits 128 + the signal once it has.
The script imports no framework (the behaviour does not depend on one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

from plumber.records.profile import Profile

pytestmark = pytest.mark.slow

#: Writes the pid of the process running it (the gate's ``plumber profile`` run), then waits.
WAITS_FOREVER = """
import os, sys, time
from pathlib import Path
Path(sys.argv[1]).write_text(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def default_signals():
    """Signals at their defaults in the gate, whatever the suite's parent ignores (nohup)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def wait_for_pid(marker, gate) -> int:
    """The run's pid once its script has started (the gate must still be running)."""
    while not marker.exists() or not marker.read_text():
        assert gate.poll() is None, gate.communicate()[1][-2000:]
        time.sleep(0.05)
    return int(marker.read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_gate_stops_its_run_which_writes_its_profile(tmp_path, signum):
    script = tmp_path / "waits.py"
    script.write_text(textwrap.dedent(WAITS_FOREVER))
    marker = tmp_path / "run.pid"
    env = {**os.environ, "PLUMBER_CACHE_DIR": str(tmp_path / "cache")}
    gate = subprocess.Popen(
        [sys.executable, "-m", "plumber", "gate", "--update", "--baseline", "baseline.json",
         "--repeats", "1", "--cpu-probe", "0", "-o", "runs", "--junit-xml", "gate.xml",
         str(script), "--", str(marker)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_signals,
    )
    run_pid = wait_for_pid(marker, gate)
    try:
        gate.send_signal(signum)
        _, err = gate.communicate(timeout=120)
        with pytest.raises(ProcessLookupError):  # ended and reaped, not left running
            os.kill(run_pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):  # a run left behind must not outlive us
            os.kill(run_pid, signal.SIGKILL)
    name = signal.Signals(signum).name
    assert gate.returncode == 128 + signum, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        f"plumber: error: stopped by {name} (the run in progress was stopped too)")
    profile = Profile.load(tmp_path / "runs" / "run-1" / "profile.json")
    assert profile.run.interrupted and profile.run.exit_status == 128 + signum
    assert not (tmp_path / "baseline.json").exists()
    (error,) = ET.parse(tmp_path / "gate.xml").getroot().iter("error")
    assert name in error.get("message")
