"""A script that closes or replaces sys.stdout or sys.stderr still leaves its profile.

The script runs in plumber's process. Closing ``sys.stderr`` lost the
profile (Python's "lost sys.stderr", exit 1); closing ``sys.stdout`` or
setting it to None ended the run with a traceback and exit 70. Each now
exits as ``python SCRIPT`` does, writes the profile and report, and
plumber's own lines go to the streams it started with (dropped only where
the script closed the descriptor itself).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from plumber.records.profile import Profile

pytestmark = pytest.mark.slow

SCRIPTS = {
    "closes sys.stderr": "import sys\nsys.stderr.close()\n",
    "closes sys.stdout": "import sys\nprint('out', end='')\nsys.stdout.close()\n",
    "replaces both": "import io, sys\nsys.stderr = io.StringIO()\nsys.stdout = None\n",
    "closes descriptor 2": "import os\nos.close(2)\n",
}


@pytest.mark.parametrize("what", SCRIPTS)
def test_the_script_doing_what_it_likes_with_its_streams_leaves_a_profile(tmp_path, what):
    script = tmp_path / "streams.py"
    script.write_text(SCRIPTS[what])
    env = {**os.environ, "PLUMBER_CACHE_DIR": str(tmp_path / "cache")}
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, env=env,
                           timeout=60)
    profiled = subprocess.run(
        [sys.executable, "-m", "plumber", "profile", "--cpu-probe", "0", "-o", "out",
         str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )
    assert profiled.returncode == plain.returncode == 0, profiled.stderr[-2000:]
    assert "Traceback" not in profiled.stderr
    assert Profile.load(tmp_path / "out" / "profile.json").run.exit_status == 0
    assert (tmp_path / "out" / "report.html").is_file()
    if what != "closes descriptor 2":
        assert "Profile:" in profiled.stderr  # plumber's summary reached the real stderr
