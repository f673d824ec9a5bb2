"""The running part of the gate: profile a script N times, time the machine around them.

Each repeat is a separate ``plumber profile`` process, so every run starts
equally cold (TensorFlow import, graph tracing) and the median is over
identical trials; a script that crashes or leaks cannot disturb the next
run or the gate. The calibration micro-benchmark runs in bursts before each
repeat and once after the last, interleaved with the runs, so both see the
same machine load.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from plumber.gate.baseline import Measurement, recorded_command
from plumber.gate.machine import SAMPLES_PER_BURST, Calibration, describe_machine, sample_speeds
from plumber.gate.measure import throughputs
from plumber.measure.runbounds import Terminated, remembering_interrupts
from plumber.records.profile import Profile
from plumber.records.version import __version__

#: Lines of a failing run's output shown with the error.
OUTPUT_TAIL_LINES = 30
#: Seconds a run stopped by SIGTERM or SIGHUP gets to write its profile before it is killed.
STOP_GRACE_S = 60.0


class ScriptFailed(RuntimeError):
    """A repeat of the gated script exited with a non-zero status."""

    def __init__(self, repeat: int, status: int, output: str) -> None:
        super().__init__(f"the script failed in run {repeat} with exit status {status}")
        self.repeat = repeat
        self.status = status
        self.output = output

    def output_tail(self) -> str:
        """The last lines of the failing run's output (the traceback is usually there)."""
        return "\n".join(self.output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])


@dataclass(frozen=True)
class RunOptions:
    """How to run the script: repeats, the ``plumber profile`` bounds, where to keep profiles.

    ``output_dir`` keeps each run's profile and report in ``run-N/`` (for a
    CI artifact); ``None`` uses a temporary folder.
    """

    repeats: int = 3
    steps: int | None = None
    duration_s: float | None = None
    cpu_probe_s: float = 2.0
    output_dir: Path | None = None


def profile_command(script: Path, args: Sequence[str], out_dir: Path, options: RunOptions
                    ) -> list[str]:
    """The ``python -m plumber profile`` command line of one repeat."""
    command = [sys.executable, "-m", "plumber", "profile", "-o", str(out_dir),
               "--cpu-probe", f"{options.cpu_probe_s:g}"]
    if options.steps is not None:
        command += ["--steps", str(options.steps)]
    if options.duration_s is not None:
        command += ["--duration", f"{options.duration_s:g}"]
    return [*command, str(script), "--", *args]


def measure_script(
    script: Path,
    args: Sequence[str],
    options: RunOptions,
    notify: Callable[[str], None],
) -> Measurement:
    """Profile ``script`` ``options.repeats`` times; raise :class:`ScriptFailed` on a failure."""
    profiles: list[Profile] = []
    speeds: list[float] = []
    with remembering_interrupts(), tempfile.TemporaryDirectory(prefix="plumber-gate-") as scratch:
        base = options.output_dir or Path(scratch)
        for repeat in range(1, options.repeats + 1):
            speeds += sample_speeds()
            notify(f"run {repeat}/{options.repeats} of {script}")
            out_dir = run_folder(base, repeat)
            status, output = run_repeat(profile_command(script, args, out_dir, options))
            if status != 0:
                raise ScriptFailed(repeat, status, output)
            profiles.append(Profile.load(out_dir / "profile.json"))
        speeds += sample_speeds()
    return measurement(profiles, Calibration.from_samples(speeds), (str(script), *args))


def run_folder(base: Path, repeat: int) -> Path:
    """Where repeat ``repeat`` (from 1) keeps its profile and report: ``BASE/run-N``."""
    return base / f"run-{repeat}"


def run_repeat(command: Sequence[str]) -> tuple[int, str]:
    """Run one repeat's ``plumber profile``; its exit status and output (stderr included).

    SIGTERM or SIGHUP to the gate while it runs (raised as
    :class:`~plumber.measure.runbounds.Terminated` by
    :func:`~plumber.measure.runbounds.remembering_interrupts`) is passed on
    to the run, which then stops its script and writes the profile of what
    ran, as it would if it had got the signal itself; the gate waits for it
    (:data:`STOP_GRACE_S` at most, then kills it) and raises the signal
    again, so no run is left behind. Anything else that stops the gate
    (Ctrl-C) kills the run, as :func:`subprocess.run` does.
    """
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        try:
            output, _ = proc.communicate()
        except Terminated as stop:
            proc.send_signal(stop.signum)
            try:
                proc.communicate(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        except BaseException:
            proc.kill()
            raise
    return proc.returncode, output


def measure_profile(path: Path, notify: Callable[[str], None]) -> Measurement:
    """Measure a saved profile; this machine is calibrated now, assumed to be the one it ran on."""
    profile = Profile.load(path)
    notify("calibrating this machine (assumed to be the one the profile was recorded on)")
    speeds = sample_speeds(3 * SAMPLES_PER_BURST)
    return measurement([profile], Calibration.from_samples(speeds), profile.run.command)


def measurement(
    profiles: Sequence[Profile], calibration: Calibration, command: Sequence[str]
) -> Measurement:
    """Assemble the measurement of ``profiles`` (one per repeat) taken on this machine."""
    machine = profiles[0].machine
    return Measurement(
        pipelines=throughputs(profiles),
        calibration=calibration,
        machine=describe_machine(machine.cores_logical, machine.cores_usable),
        command=recorded_command(command),
        repeats=len(profiles),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        plumber_version=__version__,
    )
