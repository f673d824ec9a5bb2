"""The machine a measurement ran on: how fast it was right then, and what it is.

The gate compares throughput measured today, maybe on another CI runner,
with a baseline recorded earlier. A slower or busier machine slows the
pipeline without any change to its code, so the gate measures the machine
the same way both times and scales the baseline's rate by the ratio of the
two speeds. The work is fixed and single-threaded: a pure-Python loop (the
interpreter overhead every tf.data ``py_function`` and training loop pays)
and numpy float vector math (native kernels, like most map functions). It
is timed by the wall clock, so contention from other processes counts, as
it does for the pipeline.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

#: Rounds of the workload per timed sample (about 50 ms on a 2020s server core).
ROUNDS_PER_SAMPLE = 5

#: Timed samples per calibration burst; the gate takes one burst around each repeat.
SAMPLES_PER_BURST = 3


class CalibrationUnavailable(RuntimeError):
    """The calibration cannot run here (numpy is missing)."""


@dataclass(frozen=True)
class Calibration:
    """Speed of the machine in workload rounds per second, from several samples.

    ``speed`` is the median of ``samples``; ``spread`` is their relative
    spread ((max - min) / median), a measure of how noisy the machine was.
    """

    speed: float
    samples: tuple[float, ...]

    @property
    def spread(self) -> float:
        """How noisy the machine was while sampling: (max - min) / median."""
        return (max(self.samples) - min(self.samples)) / self.speed if self.samples else 0.0

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> Calibration:
        """The calibration of ``samples`` speeds: their median, and the samples kept as evidence."""
        if not samples:
            raise ValueError("a calibration needs at least one sample")
        return cls(speed=median(samples), samples=tuple(samples))


@dataclass(frozen=True)
class MachineInfo:
    """A human description of the machine a measurement was taken on."""

    cpu: str
    cores_logical: int
    cores_usable: float
    system: str
    python: str

    def describe(self) -> str:
        """One line for the summary: CPU, cores, OS, Python."""
        return (
            f"{self.cpu}, {self.cores_logical} cores ({self.cores_usable:g} usable), "
            f"{self.system}, Python {self.python}"
        )


def _workload(np: object) -> float:
    """One round of fixed work; returns a value so nothing is optimised away."""
    acc, table = 0, {}
    for i in range(40_000):
        acc = (acc * 31 + i) % 1_000_003
        table[i & 1023] = acc
    x = np.linspace(0.0, 10.0, 100_000)  # type: ignore[attr-defined]
    for _ in range(8):
        x = np.sin(x) * 1.0001 + 0.5  # type: ignore[attr-defined]
    return float(np.sort(x)[len(x) // 2]) + len(table)  # type: ignore[attr-defined]


def sample_speeds(samples: int = SAMPLES_PER_BURST) -> list[float]:
    """Time ``samples`` runs of the workload; rounds per second for each."""
    try:
        import numpy as np
    except ImportError:
        raise CalibrationUnavailable(
            "the machine calibration needs numpy (pip install numpy)"
        ) from None
    _workload(np)  # warm caches and numpy's lazy initialisation
    speeds = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(ROUNDS_PER_SAMPLE):
            _workload(np)
        speeds.append(ROUNDS_PER_SAMPLE / (time.perf_counter() - start))
    return speeds


def describe_machine(cores_logical: int, cores_usable: float) -> MachineInfo:
    """This machine's CPU model, OS and Python, with the core counts plumber probed."""
    return MachineInfo(
        cpu=_cpu_model(),
        cores_logical=cores_logical,
        cores_usable=cores_usable,
        system=f"{platform.system()} {platform.machine()}",
        python=platform.python_version(),
    )


def _cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
