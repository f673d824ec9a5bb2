"""The gate's baseline file: what a pipeline's throughput was, and on what machine.

A baseline is a saved :class:`Measurement`: per pipeline the median rate
over the repeats (root elements/s) and the bottleneck each repeat found,
plus the machine's calibration speed and a description of the machine. It
is small, versioned JSON with its own ``schema_version`` (independent of the
profile's), meant to be committed next to the code it guards.

Pipelines are keyed by pipeline id plus the root stage's source location
(``pipeline-0@train.py:42``), so a re-run of the same script finds them. The
file name only, not its path, goes into the key: a CI runner checks the code
out somewhere else than the developer who recorded the baseline.

The command is recorded with secrets redacted (:mod:`plumber.records.redact`): the
file is committed, and a token given to the script must not be.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from plumber.gate.machine import Calibration, MachineInfo
from plumber.records import jsonfile
from plumber.records.jsonfile import finite_or_none, read_json, save_json
from plumber.records.redact import redact_arguments

#: Bump on any incompatible change to the file's layout.
SCHEMA_VERSION = 1

#: The ``format`` field, telling a baseline apart from other JSON (a profile).
FORMAT = "plumber-gate-baseline"


class BaselineError(ValueError):
    """A baseline that is missing, corrupt or incompatible; ``str()`` is a one-line reason."""


@dataclass(frozen=True)
class Bottleneck:
    """What limited a pipeline in one run.

    ``stage`` is the stage id (``None`` when the consumer is the limit),
    ``kind`` one of the analyzers' bottleneck kinds, ``source`` the stage's
    ``file:line`` for display.
    """

    stage: str | None
    kind: str
    input_bound: bool
    source: str | None = None

    @property
    def identity(self) -> tuple[str | None, str]:
        """What must stay the same for the bottleneck to count as unchanged."""
        return (self.stage, self.kind) if self.input_bound else (None, "consumer")

    def label(self) -> str:
        """``map-0 parallelism at train.py:12``, or the consumer, for the summary table."""
        if not self.input_bound:
            return "consumer (not the input)"
        where = f" at {self.source}" if self.source else ""
        return f"{self.stage or '?'} {self.kind}{where}"


@dataclass(frozen=True)
class PipelineThroughput:
    """One pipeline over all repeats.

    ``rate`` is the median of ``rates`` (one per repeat; NaN where a repeat
    measured none) when measured, and the recorded expectation when loaded
    from a baseline. ``bottlenecks`` holds the bottleneck most repeats found,
    or several when repeats tie (the first seen first); a baseline keeps one.
    """

    key: str
    pipeline_id: str
    root: str
    rate: float
    rates: tuple[float, ...]
    bottlenecks: tuple[Bottleneck, ...]

    @property
    def bottleneck(self) -> Bottleneck | None:
        """The representative bottleneck (the first of a tie); None if none was found."""
        return self.bottlenecks[0] if self.bottlenecks else None


def median_rate(rates: Sequence[float]) -> float:
    """Median of the finite rates (NaN when there are none)."""
    measured = sorted(r for r in rates if math.isfinite(r))
    if not measured:
        return math.nan
    middle = len(measured) // 2
    if len(measured) % 2:
        return measured[middle]
    return (measured[middle - 1] + measured[middle]) / 2


def most_common(bottlenecks: Sequence[Bottleneck]) -> tuple[Bottleneck, ...]:
    """The bottlenecks found by the most repeats (several on a tie), first seen first."""
    counts = Counter(b.identity for b in bottlenecks)
    top = max(counts.values(), default=0)
    chosen: dict[tuple[str | None, str], Bottleneck] = {}
    for b in bottlenecks:
        if counts[b.identity] == top and b.identity not in chosen:
            chosen[b.identity] = b
    return tuple(chosen.values())


@dataclass(frozen=True)
class Measurement:
    """Everything one gate run measured; saved as is, it is the baseline.

    ``command`` is the script (file name) and its arguments as
    :func:`recorded_command` gives them, ``repeats`` how many runs the
    medians are over (1 for a saved profile).
    """

    pipelines: tuple[PipelineThroughput, ...]
    calibration: Calibration
    machine: MachineInfo
    command: tuple[str, ...]
    repeats: int
    created_at: str
    plumber_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created_at": self.created_at,
            "plumber_version": self.plumber_version,
            "command": list(self.command),
            "repeats": self.repeats,
            "unit": "root elements/s",
            "calibration": {
                "speed": self.calibration.speed,
                "samples": list(self.calibration.samples),
            },
            "machine": vars(self.machine),
            "pipelines": {p.key: _pipeline_dict(p) for p in self.pipelines},
        }


def recorded_command(command: Sequence[str]) -> tuple[str, ...]:
    """The script's file name (not its path) and its arguments, secrets redacted.

    Always redacted, whatever ``--keep-secrets`` did for the runs' profiles:
    a baseline is meant to be committed. Comparing two recorded commands
    therefore ignores a changed token, as it should.
    """
    if not command:
        return ()
    return redact_arguments((PurePath(command[0]).name, *command[1:]))


def _pipeline_dict(p: PipelineThroughput) -> dict[str, Any]:
    return {
        "pipeline_id": p.pipeline_id,
        "root": p.root,
        "rate": finite_or_none(p.rate),
        "rates": [finite_or_none(r) for r in p.rates],
        "bottleneck": None if p.bottleneck is None else vars(p.bottleneck),
    }


def save_baseline(measurement: Measurement, path: str | Path) -> Path:
    """Write ``measurement`` as the baseline at ``path`` (atomically: temp file + rename)."""
    return save_json(path, measurement.to_dict())


def load_baseline(path: str | Path) -> Measurement:
    """Read a baseline; raise :class:`BaselineError` with a one-line reason when unusable."""
    data = read_json(path, BaselineError, f"baseline {path}",
                     missing=f"no baseline at {path} (record one with plumber gate --update)")
    return baseline_from_dict(data, str(path))


def is_baseline_file(path: str | Path) -> bool:
    """Whether ``path`` holds a plumber gate baseline (any version, even a damaged one)."""
    try:
        data = read_json(path, BaselineError, f"baseline {path}", missing="")
    except BaselineError:
        return False
    return _is_baseline(data)


def _is_baseline(data: Any) -> bool:
    """Whether parsed JSON says it is a gate baseline (its ``format``), whatever else it holds."""
    return isinstance(data, Mapping) and data.get("format") == FORMAT


def baseline_from_dict(data: Any, name: str = "baseline") -> Measurement:
    """Rebuild a baseline from parsed JSON, checking its format and version."""
    if not _is_baseline(data):
        raise BaselineError(f"{name} is not a plumber gate baseline (no format {FORMAT!r})")
    try:
        jsonfile.checked_schema_version(data, SCHEMA_VERSION, "baseline")
    except jsonfile.SchemaVersionError as exc:
        again = " or re-record with --update" if exc.newer else ""
        raise BaselineError(f"{name}: {exc}{again}") from None
    try:
        return _measurement(data)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise BaselineError(f"{name} is malformed: {detail}") from None


def _measurement(data: Mapping[str, Any]) -> Measurement:
    """The baseline's fields, each checked so that no value can switch the gate off."""
    calibration = data["calibration"]
    machine = data["machine"]
    pipelines = data["pipelines"]
    if not isinstance(pipelines, Mapping):
        raise TypeError("pipelines must be an object")
    if not pipelines:
        raise ValueError("it holds no pipeline, so it gates nothing (re-record with --update)")
    return Measurement(
        pipelines=tuple(_pipeline(key, p) for key, p in pipelines.items()),
        calibration=_calibration(calibration),
        machine=MachineInfo(
            cpu=str(machine["cpu"]),
            cores_logical=_positive_int(machine["cores_logical"], "machine cores_logical"),
            cores_usable=_positive(machine["cores_usable"], "machine cores_usable"),
            system=str(machine["system"]),
            python=str(machine["python"]),
        ),
        command=recorded_command([str(c) for c in data["command"]]),
        repeats=_positive_int(data["repeats"], "repeats"),
        created_at=str(data["created_at"]),
        plumber_version=str(data["plumber_version"]),
    )


def _calibration(data: Mapping[str, Any]) -> Calibration:
    """The stored speed is the one compared against; it must be finite and positive to divide by."""
    speed = _positive(data["speed"], "calibration speed")
    samples = data["samples"]
    if not isinstance(samples, Sequence) or isinstance(samples, str):
        raise TypeError("calibration samples must be a list")
    values = tuple(_number(s) for s in samples)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"calibration samples must be positive numbers, got {list(values)}")
    return Calibration(speed=speed, samples=values)


def _pipeline(key: str, data: Mapping[str, Any]) -> PipelineThroughput:
    """One pipeline's expectation: a positive rate, or null (unmeasured) with a bottleneck.

    A rate of NaN, 0, below 0 or infinite would pass every run, so it is
    refused; so is an entry that has neither a rate nor a bottleneck.
    """
    rates = data["rates"]
    if not isinstance(rates, Sequence) or isinstance(rates, str):
        raise TypeError(f"pipeline {key}: rates must be a list")
    runs = tuple(math.nan if r is None else _number(r) for r in rates)
    if not all(math.isnan(r) or math.isfinite(r) and r >= 0 for r in runs):
        raise ValueError(f"pipeline {key}: rates must be numbers of 0 or more (or null), "
                         f"got {list(runs)}")
    rate = data["rate"]
    bottleneck = data["bottleneck"]
    if rate is None and bottleneck is None:
        raise ValueError(f"pipeline {key} has neither a rate nor a bottleneck, so it gates "
                         f"nothing (re-record with --update)")
    return PipelineThroughput(
        key=key,
        pipeline_id=str(data["pipeline_id"]),
        root=str(data["root"]),
        rate=math.nan if rate is None else _positive(rate, f"pipeline {key}: rate"),
        rates=runs,
        bottlenecks=() if bottleneck is None else (_bottleneck(bottleneck),),
    )


def _bottleneck(data: Mapping[str, Any]) -> Bottleneck:
    return Bottleneck(
        stage=None if data["stage"] is None else str(data["stage"]),
        kind=str(data["kind"]),
        input_bound=bool(data["input_bound"]),
        source=None if data.get("source") is None else str(data["source"]),
    )


def _positive(value: Any, what: str) -> float:
    """``value`` if it is a finite number above 0; a one-line ValueError naming ``what`` if not."""
    number = _number(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return number


def _positive_int(value: Any, what: str) -> int:
    """``value`` if it is an integer above 0 (not true, not 2.5); a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
