"""Bad input and bad endings: a profile is always left, errors are one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from plumber.records.profile import SCHEMA_VERSION, Profile

pytestmark = pytest.mark.slow

PIPELINE = """
import tensorflow as tf
dataset = tf.data.Dataset.range(10_000).map(lambda x: x * 2).batch(4)
"""


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_script_that_raises_leaves_a_profile_and_report_and_exits_1(plumber_cli, tmp_path):
    script = write(tmp_path, "boom.py", PIPELINE + """
for i, batch in enumerate(dataset):
    if i == 200:
        raise ValueError("bad batch")
""")
    run = plumber_cli("profile", "-o", "out", script)
    assert run.returncode == 1
    assert "ValueError: bad batch" in run.stderr
    profile = Profile.load(run.profile_path)
    assert profile.run.exit_status == 1
    assert profile.run.error == "ValueError: bad batch"
    assert profile.pipelines and profile.pipelines[0].consumer.steps >= 200
    assert "bad batch" in run.report_path.read_text()


def test_script_exit_status_passes_through(plumber_cli, tmp_path):
    script = write(tmp_path, "exit3.py", PIPELINE + """
import sys
for batch in dataset.take(5):
    pass
sys.exit(3)
""")
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script)
    assert run.returncode == 3
    assert Profile.load(run.profile_path).run.exit_status == 3


def test_script_arguments_after_double_dash_reach_the_script(plumber_cli, tmp_path):
    script = write(tmp_path, "args.py", """
import sys
print("ARGS", sys.argv[1:])
""")
    run = plumber_cli("profile", "-o", "out", script, "--", "--epochs", "1")
    assert run.returncode == 0
    assert "ARGS ['--epochs', '1']" in run.stdout


def test_missing_script_is_a_one_line_error(plumber_cli, tmp_path):
    run = plumber_cli("profile", tmp_path / "nope.py")
    assert run.returncode == 2
    expected = f"plumber: error: no such script: {tmp_path / 'nope.py'}"
    assert run.stderr.strip().splitlines() == [expected]


def test_script_without_a_pipeline_says_so(plumber_cli, tmp_path):
    script = write(tmp_path, "plain.py", "print('hello')\n")
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script)
    assert run.returncode == 0
    assert "no input pipeline" in run.stderr.lower() or "no tf.data pipeline" in run.stderr
    assert Profile.load(run.profile_path).pipelines == ()


def test_infinite_pipeline_is_bounded_by_steps(plumber_cli, tmp_path):
    script = write(tmp_path, "forever.py", """
import tensorflow as tf
for batch in tf.data.Dataset.range(10).repeat().batch(2):
    pass
""")
    run = plumber_cli("profile", "-o", "out", "--steps", "300", script, timeout=120)
    assert run.returncode == 0
    profile = Profile.load(run.profile_path)
    assert profile.run.bounded_by == "steps"
    assert profile.pipelines[0].infinite
    assert profile.pipelines[0].consumer.steps == 300


def test_infinite_pipeline_without_bound_gets_a_message_and_duration_bound(plumber_cli, tmp_path):
    script = write(tmp_path, "forever.py", """
import tensorflow as tf
for batch in tf.data.Dataset.range(10).repeat().batch(2):
    pass
""")
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", "--duration", "3", script,
                      timeout=120)
    assert run.returncode == 0
    assert Profile.load(run.profile_path).run.bounded_by == "duration"


#: A step that spends its time in a ``__del__``, where Python loses an exception raised
#: into the thread (it prints "Exception ignored" and goes on), as TF's executors can.
BUSY_ON_DELETE = """
class BusyOnDelete:
    def __del__(self):
        started = time.monotonic()
        while time.monotonic() - started < 0.2:
            pass
"""


@pytest.mark.parametrize("step", ["time.sleep(0.01)", "BusyOnDelete()"])
def test_ctrl_c_leaves_a_profile_and_exits_130(tmp_path, step):
    script = write(tmp_path, "slow.py", "import time\nimport tensorflow as tf\n" +
                   BUSY_ON_DELETE + f"""
print("ready", flush=True)
for batch in tf.data.Dataset.range(10).repeat():
    {step}
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plumber", "profile", "-o", "out", str(script)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C reaches a script run from a terminal even when the suite itself was
        # started in the background, where the shell ignores SIGINT for its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.interrupted
    assert profile.pipelines[0].consumer.steps > 5


def test_a_duration_bound_stops_a_loop_that_loses_the_interrupt(plumber_cli, tmp_path):
    script = write(tmp_path, "losing.py", "import time\nimport tensorflow as tf\n" +
                   BUSY_ON_DELETE + """
for batch in tf.data.Dataset.range(10).repeat():
    BusyOnDelete()
""")
    run = plumber_cli("profile", "-o", "out", "--duration", "3", script, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert Profile.load(run.profile_path).run.bounded_by == "duration"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"hello": 1}', "not a plumber profile"),
        (json.dumps({"schema_version": SCHEMA_VERSION + 1}), "newer than this plumber"),
        (json.dumps({"schema_version": 1, "run": {}}), "malformed profile"),
    ],
)
def test_report_on_a_bad_profile_is_a_one_line_error(plumber_cli, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    run = plumber_cli("report", bad)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], run.stderr


def test_report_rerenders_a_saved_profile_without_rerunning(plumber_cli, tmp_path):
    script = write(tmp_path, "ok.py", PIPELINE + """
for batch in dataset.take(50):
    pass
""")
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script)
    assert run.returncode == 0
    run.report_path.unlink()
    again = plumber_cli("report", run.profile_path, "-o", tmp_path / "again.html")
    assert again.returncode == 0
    assert (tmp_path / "again.html").read_text().lower().startswith("<!doctype html>")
    assert str(tmp_path / "again.html") in again.stdout
