"""Sample the Python stacks of the profiled process and its workers with py-spy (``--hotspots``).

plumber runs the user's script in its own process and DataLoader workers are
its forked children, so one ``py-spy record --pid <this process>
--subprocesses`` sees them all. It samples without stopping the process
(``--nonblocking``: stopping every thread slows a process with many threads
by several times), tags each sample with its thread and process
(``--threads``, and the process frames ``--subprocesses`` adds), keeps
waiting threads (``--idle``) and writes the collapsed stacks (``--format
raw``) when it gets SIGINT at the end of the run. It runs in a session of
its own so the user's Ctrl-C reaches plumber, not it. The script starts
once py-spy says it samples (at most :data:`START_TIMEOUT_S` later): py-spy
first attaches to the process and to each child it has, and a short run
could end before then with nothing sampled (a notebook profile of a
second-long loop, in a whole test suite's process, once recorded no stack).

Where Yama restricts tracing to descendants, this process and the workers
forked while py-spy runs name py-spy as allowed to read them
(:func:`allow_tracing`). py-spy may still be missing or unable to attach (no
ptrace permission in a container, an unsupported Python):
:class:`StackSampler` then says why in one line and the run goes on
unsampled. :func:`parse_raw` and :func:`python_samples` are pure, tested on
text.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plumber.records.profile import PyFrame, PythonSamples, SampledStack

#: Samples per second per thread: a stage's top functions from a run of some
#: seconds (a stage sampled less says its share is rough). py-spy's own CPU
#: grows with it: on a DataLoader decoding images in 2 workers for 12 short
#: epochs (5 s in all) it used 0.93 s of CPU at 50 Hz, 0.65 s at 20 and
#: 0.48 s at 10, much of the rest attaching to each epoch's new workers; on
#: 2 busy cores that workload kept 0.85 of its plain rate at 20 Hz and 0.92
#: at 10 (BENCHMARKS.md, hotspots overhead).
DEFAULT_RATE_HZ = 10

#: How py-spy samples (see the module): the workers too, without stopping
#: them, thread by thread, idle threads included.
SAMPLING_FLAGS = ("--subprocesses", "--nonblocking", "--threads", "--idle")

#: The oldest Python whose samples can be given to stages: on 3.10, py-spy reads
#: neither the OS ids of threads (it gives pthread handles, so a process's main
#: thread cannot be told) nor qualified function names (``__call__``, not
#: ``TimedTransform.__call__``), and every sample was left unattributed.
MIN_PYTHON = (3, 11)
PYTHON_TOO_OLD = ("Python 3.10 is not supported: py-spy reads neither thread ids nor qualified "
                  "function names from it, which giving samples to stages needs (Python 3.11 "
                  "or newer)")

#: The highest rate asked of py-spy (its own default is 100).
MAX_RATE_HZ = 1000

#: Distinct stacks kept in the profile, most sampled first; the rarest are
#: counted in ``dropped_samples`` so a long run's profile stays small.
MAX_STACKS = 2000

#: Seconds py-spy gets to write its output after SIGINT before it is killed.
STOP_TIMEOUT_S = 15.0

#: Seconds the script waits for py-spy to start sampling; past them it starts unsampled.
START_TIMEOUT_S = 10.0

#: What py-spy prints on its standard output once it has attached and samples.
SAMPLING_STARTED = b"Sampling process"

_PROCESS = re.compile(r'process (\d+):".*?";(?=process \d+:"|thread \()')
_THREAD = re.compile(r"thread \((0x[0-9a-fA-F]+|\d+)\)(?:: [^;]*)?")
_FRAME = re.compile(r"^(.*?) \((.*):(\d+)\)$")


@dataclass(frozen=True)
class RawStack:
    """One line of py-spy's raw output: the process chain, thread, frames and count."""

    pids: tuple[int, ...]
    tid: int
    frames: tuple[PyFrame, ...]
    samples: int


def parse_raw(text: str) -> list[RawStack]:
    """The stacks of py-spy's ``--format raw --threads`` output (with ``--subprocesses``).

    A line reads ``process PID:"CMD";[process PID:"CMD";]thread (TID)[:
    NAME];frame;...;frame COUNT``, outermost frame first, each frame
    ``function (file:line)``. Lines that do not read so are skipped.
    """
    stacks = []
    for line in text.splitlines():
        body, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        pids = []
        position = 0
        while match := _PROCESS.match(body, position):
            pids.append(int(match.group(1)))
            position = match.end()
        thread = _THREAD.match(body, position)
        if thread is None:
            continue
        rest = body[thread.end():].lstrip(";")
        frames = tuple(_frame(text) for text in rest.split(";")) if rest else ()
        stacks.append(RawStack(tuple(pids), int(thread.group(1), 0), frames, int(count)))
    return stacks


def _frame(text: str) -> PyFrame:
    match = _FRAME.match(text)
    if match is None:
        return PyFrame(text, "", 0)
    return PyFrame(match.group(1), match.group(2), int(match.group(3)))


def python_samples(
    stacks: Iterable[RawStack], pid: int, rate_hz: float, sampler: str,
    library_roots: tuple[str, ...] = (), max_stacks: int = MAX_STACKS,
    sampler_cpu_s: float | None = None,
) -> PythonSamples:
    """The profile's record of ``stacks``: a frame table and the ``max_stacks`` most sampled.

    Identical stacks of one thread are merged; each stack belongs to the
    innermost process of its chain (a worker's samples name its parent too).
    ``sampler_cpu_s`` is the CPU py-spy itself used.
    """
    merged: Counter[tuple[int, int, tuple[PyFrame, ...]]] = Counter()
    for stack in stacks:
        owner = stack.pids[-1] if stack.pids else pid
        merged[(owner, stack.tid, stack.frames)] += stack.samples
    total = sum(merged.values())
    kept = merged.most_common(max_stacks)
    table: dict[PyFrame, int] = {}
    records = []
    for (owner, tid, frames), count in kept:
        indexes = tuple(table.setdefault(frame, len(table)) for frame in frames)
        records.append(SampledStack(pid=owner, tid=tid, frames=indexes, samples=count))
    return PythonSamples(
        sampler=sampler, rate_hz=float(rate_hz), pid=pid, samples=total,
        frames=tuple(table), stacks=tuple(records),
        dropped_samples=total - sum(count for _, count in kept),
        library_roots=library_roots, sampler_cpu_s=sampler_cpu_s,
    )


def library_roots() -> tuple[str, ...]:
    """Folders holding code that is not the user's: the standard library, packages, plumber,
    and the installed console scripts (``plumber`` itself, when run as ``plumber profile``)."""
    paths = sysconfig.get_paths()
    roots = [paths.get(name, "")
             for name in ("stdlib", "platstdlib", "purelib", "platlib", "scripts")]
    roots.append(str(Path(__file__).resolve().parents[1]))
    unique: list[str] = []
    for root in roots:
        if root and os.path.realpath(root) not in unique:
            unique.append(os.path.realpath(root))
    return tuple(unique)


def checked_rate_hz(rate: float) -> int:
    """``rate`` as py-spy's ``--rate`` (a whole number of samples per second, 1 to 1000).

    ValueError saying what it must be otherwise (a bool is not a rate).
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
            or not 1 <= rate <= MAX_RATE_HZ or rate != int(rate):
        raise ValueError(f"must be a whole number of samples per second from 1 to {MAX_RATE_HZ}")
    return int(rate)


def find_py_spy() -> str | None:
    """The py-spy executable: the one installed beside this Python's scripts, else on PATH.

    The one installed with plumber comes first: a ``py-spy`` found first on
    PATH may be another environment's, or a version manager's shim (pyenv's
    runs a shell and several commands, about 50 ms of CPU, per call).
    """
    beside = Path(sysconfig.get_path("scripts")) / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


class StackSampler:
    """py-spy recording this process and its children from :meth:`start` to :meth:`stop`.

    The executable is ``executable``, else ``$PLUMBER_PY_SPY``, else the one
    :func:`find_py_spy` finds.

    ``problem`` says in one line why there are no samples (py-spy missing,
    failing to attach or to write); :meth:`stop` returns ``None`` then.
    ``pid`` is py-spy's process while it runs, a child of this one whose CPU
    the samples record apart (``sampler_cpu_s``).
    """

    def __init__(self, rate_hz: float = DEFAULT_RATE_HZ, executable: str | None = None) -> None:
        self.rate_hz = rate_hz
        self.executable = executable
        self.problem: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: Path | None = None
        self._version = "py-spy"
        #: Whether py-spy had not said it samples after START_TIMEOUT_S (the run's start
        #: went unsampled).
        self.started_late = False

    @property
    def pid(self) -> int | None:
        """py-spy's process id while it runs, else None."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Launch py-spy on this process; a failure to launch is recorded in ``problem``."""
        if sys.version_info < MIN_PYTHON:
            self.problem = PYTHON_TOO_OLD
            return
        executable = self.executable or os.environ.get("PLUMBER_PY_SPY") or find_py_spy()
        if executable is None:
            self.problem = ("py-spy is not installed (pip install 'plumber-pipelines[hotspots]' "
                            "or pip install py-spy)")
            return
        self._version = _version_of(executable)
        self._folder = Path(tempfile.mkdtemp(prefix="plumber-hotspots-"))
        command = [
            executable, "record", "--pid", str(os.getpid()), *SAMPLING_FLAGS,
            "--full-filenames", "--format", "raw",
            "--rate", str(int(self.rate_hz)), "--output", str(self._folder / "stacks.txt"),
        ]
        allow_tracing(PTRACER_ANY)  # until py-spy's pid is known: it attaches at once
        try:
            with (self._folder / "stderr.txt").open("wb") as stderr:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=stderr, start_new_session=True,
                )
        except OSError as exc:
            allow_tracing(0)
            self.problem = f"py-spy could not be started: {exc}"
            self._cleanup()
            return
        _trace_forks_by(self._process.pid)
        allow_tracing(self._process.pid)
        self.started_late = not _sampling_started(self._process, START_TIMEOUT_S)

    def stop(self) -> PythonSamples | None:
        """Stop py-spy (SIGINT: it writes its stacks) and read them; None with ``problem`` set."""
        process, folder = self._process, self._folder
        if process is None or folder is None:
            return None
        self._process = None
        _trace_forks_by(None)
        allow_tracing(0)
        try:
            used_s = _cpu_s(process.pid)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                self.problem = f"py-spy did not stop within {STOP_TIMEOUT_S:g} s after SIGINT"
                return None
            output = folder / "stacks.txt"
            if not output.exists():
                self.problem = (f"py-spy failed (exit status {process.returncode}): "
                                f"{_error_of(folder / 'stderr.txt')}")
                return None
            stacks = parse_raw(output.read_text("utf-8", errors="replace"))
            return python_samples(stacks, os.getpid(), self.rate_hz, self._version,
                                  library_roots(), sampler_cpu_s=used_s)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _sampling_started(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait until py-spy says it samples (it attaches to this process and its children
    first), or ends, or ``timeout_s`` passes; False on the timeout.

    Its standard output is read to the end by a thread of its own: py-spy
    also prints there when it falls behind, and a full pipe would stop it.
    """
    said = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                if SAMPLING_STARTED in line:
                    said.set()
        said.set()

    threading.Thread(target=read, name="plumber-py-spy-output", daemon=True).start()
    return said.wait(timeout_s)


#: ``prctl(2)`` option of Linux's Yama module: the process allowed to trace this one.
PR_SET_PTRACER = 0x59616D61
#: Its value letting any process trace this one (``PR_SET_PTRACER_ANY``); 0 clears it.
PTRACER_ANY = -1

#: The sampler's pid while it samples: processes forked meanwhile let it trace them.
_tracer: int | None = None
_fork_hook_installed = False


def allow_tracing(pid: int) -> None:
    """Let process ``pid`` read this one (0: nobody beyond the default).

    Under Yama's ``ptrace_scope`` 1 (Ubuntu's default) a process may read
    only its descendants, and py-spy is plumber's child, not its parent: the
    process being read has to name it. A no-op where there is no such
    setting (not Linux, no Yama, or the call refused).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid & 0xFFFFFFFFFFFFFFFF), 0, 0, 0)
    except (OSError, AttributeError):
        return


def _trace_forks_by(pid: int | None) -> None:
    """Make each process forked from now on (DataLoader workers) let ``pid`` read it too."""
    global _tracer, _fork_hook_installed
    _tracer = pid
    if pid is not None and not _fork_hook_installed:
        os.register_at_fork(after_in_child=_let_tracer_read_child)
        _fork_hook_installed = True


def _let_tracer_read_child() -> None:
    if _tracer is not None:
        allow_tracing(_tracer)


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used, None when unreadable."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _version_of(executable: str) -> str:
    """``py-spy 0.4.3``, or ``py-spy`` when it does not say."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "py-spy"
    return done.stdout.strip() or "py-spy"


def _error_of(path: Path) -> str:
    """What py-spy said went wrong on stderr: its ``Error:`` line and the first cause under it
    (not a backtrace's last line, which ``RUST_BACKTRACE`` adds); else its last line."""
    try:
        lines = [line.strip() for line in path.read_text("utf-8", errors="replace").splitlines()]
    except OSError:
        return "no output and no message"
    said = [line.removeprefix("py-spy>").strip() for line in lines if line.strip()]
    error = next((i for i, line in enumerate(said) if line.startswith("Error:")), None)
    if error is None:
        return said[-1] if said else "no output and no message"
    message = said[error].removeprefix("Error:").strip()
    causes = said[error + 1:]
    if causes and causes[0] == "Caused by:" and len(causes) > 1:
        message += f" ({causes[1].split(':', 1)[-1].strip()})"
    return message
