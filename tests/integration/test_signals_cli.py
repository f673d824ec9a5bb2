"""Endings from outside the script: forked children, SIGTERM/SIGHUP, a reader that goes away.

Each runs the real ``plumber`` CLI on a tiny script that imports no framework
(the behaviour does not depend on one), except the DataLoader test, which
checks that torch's forked workers still work with plumber's handlers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import run_plumber

from plumber.records.profile import Profile

#: The script forks; the child leaves the script only after plumber's process has exited,
#: so anything it wrote would replace what plumber wrote.
FORK_OUTLIVING_PLUMBER = """
import os, sys, time
parent = os.getpid()
if os.fork() == 0:
    while os.getppid() == parent:
        time.sleep(0.02)
    print("child leaves the script", flush=True)
    if sys.argv[1] == "exit":
        sys.exit(5)
    if sys.argv[1] == "raise":
        raise ValueError("child failed")
else:
    print("parent leaves the script", flush=True)
"""

#: The script forks and waits for the child, printing the status the child exited with.
FORK_AWAITED = """
import os, sys
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "exit":
        sys.exit(5)
    if sys.argv[1] == "raise":
        raise ValueError("child failed")
else:
    _, status = os.waitpid(pid, 0)
    print("child status", os.waitstatus_to_exitcode(status), flush=True)
"""

#: Prints "ready", then waits to be stopped from outside.
WAITS_FOREVER = """
import time
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def plumber_env(tmp_path, **extra):
    env = {**os.environ, "PLUMBER_CACHE_DIR": str(tmp_path / "cache"), **extra}
    env.pop("PYTHONUNBUFFERED", None)
    return env


def default_signals():
    """Signals at their defaults in the CLI, whatever the suite's parent ignores (nohup)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("ending", ["return", "exit", "raise"])
def test_a_forked_child_leaving_the_script_leaves_plumbers_outputs_alone(tmp_path, ending):
    script = write(tmp_path, "forks.py", FORK_OUTLIVING_PLUMBER)
    # capture_output waits until the child, which holds the pipes, has exited too.
    run = run_plumber(["profile", "-o", "out", str(script), "--", ending], cwd=tmp_path,
                      timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "child leaves the script" in run.stdout
    assert run.stderr.count("Profile:") == 1, run.stderr
    profile = Profile.load(run.profile_path)
    assert profile.run.exit_status == 0 and profile.run.error is None
    assert "child failed" not in run.report_path.read_text()


@pytest.mark.parametrize(("ending", "status"), [("return", 0), ("exit", 5), ("raise", 1)])
def test_a_forked_child_exits_with_the_scripts_status(tmp_path, ending, status):
    script = write(tmp_path, "forks.py", FORK_AWAITED)
    run = run_plumber(["profile", "-o", "out", str(script), "--", ending], cwd=tmp_path,
                      timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"child status {status}" in run.stdout
    assert run.stderr.count("Profile:") == 1, run.stderr
    assert ("ValueError: child failed" in run.stderr) is (ending == "raise")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_leaves_a_profile_and_exits_128_plus_the_signal(tmp_path, signum):
    script = write(tmp_path, "waits.py", WAITS_FOREVER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plumber", "profile", "-o", "out", str(script)],
        cwd=tmp_path, env=plumber_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.interrupted and profile.run.exit_status == 128 + signum
    assert profile.run.error == f"terminated ({signal.Signals(signum).name})"
    assert (tmp_path / "out" / "report.html").read_text().rstrip().endswith("</html>")
    assert err.count("Profile:") == 1


def test_a_closed_stdout_keeps_the_profile_and_exits_120_as_python_does(tmp_path):
    """``plumber profile x.py | head -1``: the script's last output cannot be written."""
    script = write(tmp_path, "prints.py", """
    import sys
    print("first", flush=True)
    sys.stdin.readline()
    print("second")  # buffered: written only when the script ends, after the reader left
    """)
    plain = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=plumber_env(tmp_path))
    profiled = subprocess.Popen(
        [sys.executable, "-m", "plumber", "profile", "-o", "out", str(script)], cwd=tmp_path,
        env=plumber_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    for proc in (plain, profiled):
        assert proc.stdout.readline() == "first\n"
        proc.stdout.close()  # the reader goes, as head -1 does
        proc.stdin.write("go\n")
        proc.stdin.close()
        proc.wait(timeout=120)
    err = profiled.stderr.read()
    assert plain.returncode == profiled.returncode == 120, err[-2000:]
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.exit_status == 120 and "could not be written" in profile.run.error
    assert (tmp_path / "out" / "report.html").is_file()
    assert "Traceback" not in err and err.count("Profile:") == 1


def test_a_closed_stderr_loses_only_plumbers_lines(tmp_path):
    """``plumber profile x.py 2>&1 | head -1``: the summary has no reader; the profile stays."""
    script = write(tmp_path, "quiet.py", "import sys\nsys.stdin.readline()\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plumber", "profile", "-o", "out", str(script)], cwd=tmp_path,
        env=plumber_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout.readline().startswith("plumber: profiling")
    proc.stdout.close()
    proc.stdin.write("go\n")
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0
    assert Profile.load(tmp_path / "out" / "profile.json").run.exit_status == 0
    assert (tmp_path / "out" / "report.html").is_file()


def test_report_to_a_closed_stdout_writes_the_report_and_exits_0(tmp_path):
    script = write(tmp_path, "nothing.py", "pass\n")
    first = run_plumber(["profile", "-o", "out", str(script)], cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    first.report_path.unlink()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plumber", "report", str(first.profile_path)], cwd=tmp_path,
        env=plumber_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    proc.stdout.close()  # the reader is gone before the summary is printed
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert first.report_path.is_file()


TORCH_WORKERS = """
import time
import torch
from torch.utils.data import DataLoader, Dataset

class Slow(Dataset):
    def __len__(self):
        return 10_000

    def __getitem__(self, i):
        time.sleep(0.002)
        return torch.tensor([i])

loader = DataLoader(Slow(), batch_size=4, num_workers=2,
                    multiprocessing_context="fork")
for step, batch in enumerate(loader):
    if step == 20:
        print("ready", flush=True)
"""


@pytest.mark.slow
def test_sigterm_stops_a_dataloader_with_forked_workers_and_keeps_its_profile(tmp_path):
    pytest.importorskip("torch")
    script = write(tmp_path, "workers.py", TORCH_WORKERS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plumber", "profile", "-o", "out", str(script)],
        cwd=tmp_path, env=plumber_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.error == "terminated (SIGTERM)"
    assert profile.pipelines and profile.pipelines[0].consumer.steps > 20
    assert err.count("Profile:") == 1


#: A short tf.data run, so that plumber's per-stage CPU probe runs after it.
TF_SHORT = """
import tensorflow as tf
ds = tf.data.Dataset.range(200).map(lambda x: tf.reduce_sum(tf.range(x % 50)))
for _ in ds:
    pass
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_the_probes_after_the_script_still_writes_the_profile(tmp_path, signum):
    pytest.importorskip("tensorflow")
    script = write(tmp_path, "short.py", TF_SHORT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plumber", "profile", "-o", "out", "--cpu-probe", "120",
         str(script)],
        cwd=tmp_path, env=plumber_env(tmp_path, TF_CPP_MIN_LOG_LEVEL="2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "measuring per-stage CPU time" in line:
            break
    assert seen and "measuring per-stage CPU time" in seen[-1], "".join(seen)[-3000:]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=90)  # the probe alone would take 120 s
    assert proc.returncode == 128 + signum, err[-3000:]
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.exit_status == 0  # the script itself ended well
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert any(f"stopped by {name} while probing" in note for note in profile.run.notes)
    (pipeline,) = profile.pipelines
    assert pipeline.consumer is not None and pipeline.consumer.steps == 200
    assert (tmp_path / "out" / "report.html").read_text().rstrip().endswith("</html>")
