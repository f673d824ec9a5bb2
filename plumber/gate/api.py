"""The gate as functions: measure, record a baseline, check against one, assert in a test.

``plumber gate`` and :func:`assert_throughput` both go through here, so a
test asserting throughput applies exactly the rules the CI gate applies.
A target ending in ``.json`` is a saved profile; anything else is a script
run ``repeats`` times under ``plumber profile``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from plumber.gate.baseline import Measurement, load_baseline, save_baseline
from plumber.gate.compare import GateResult, check_tolerance, compare
from plumber.gate.markdown import gate_summary
from plumber.gate.runner import RunOptions, measure_profile, measure_script

#: The tolerance the gate uses unless told otherwise: 10% below the expectation.
DEFAULT_TOLERANCE = 0.10


class NothingToRecord(ValueError):
    """The run showed no input pipeline, so a baseline would gate nothing."""


def _quiet(message: str) -> None:
    """Progress messages are dropped unless a caller asks for them."""


def is_profile(target: str | Path) -> bool:
    """A saved profile (``*.json``) rather than a script to run."""
    return Path(target).suffix.lower() == ".json"


def measure(
    target: str | Path,
    script_args: Sequence[str] = (),
    options: RunOptions | None = None,
    notify: Callable[[str], None] = _quiet,
) -> Measurement:
    """Measure a saved profile, or run a script ``options.repeats`` times and take medians."""
    target = Path(target)
    if is_profile(target):
        return measure_profile(target, notify)
    return measure_script(target, script_args, options or RunOptions(), notify)


def record(
    target: str | Path,
    baseline: str | Path,
    script_args: Sequence[str] = (),
    options: RunOptions | None = None,
    notify: Callable[[str], None] = _quiet,
) -> Measurement:
    """Measure ``target`` and write the result as the baseline (created or replaced)."""
    measured = measure(target, script_args, options, notify)
    if not measured.pipelines:
        raise NothingToRecord(f"{target} iterated no input pipeline, so there is nothing to record")
    save_baseline(measured, baseline)
    return measured


def check(
    target: str | Path,
    baseline: str | Path,
    tolerance: float = DEFAULT_TOLERANCE,
    script_args: Sequence[str] = (),
    options: RunOptions | None = None,
    notify: Callable[[str], None] = _quiet,
) -> GateResult:
    """Judge ``target`` against ``baseline``; the baseline is read first, before any run.

    Raises :class:`~plumber.gate.baseline.BaselineError` for an unusable
    baseline and :class:`~plumber.gate.runner.ScriptFailed` when the script fails.
    """
    tolerance = check_tolerance(tolerance)
    expected = load_baseline(baseline)
    measured = measure(target, script_args, options, notify)
    return compare(expected, measured, tolerance)


def assert_throughput(
    target: str | Path,
    baseline: str | Path,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    script_args: Sequence[str] = (),
    repeats: int = 3,
    steps: int | None = None,
    duration_s: float | None = None,
    cpu_probe_s: float = 2.0,
) -> GateResult:
    """Assert, in a test, that a pipeline keeps its throughput relative to its baseline.

    ``target`` is a script (run ``repeats`` times, as ``plumber gate`` does,
    each run bounded by ``steps``/``duration_s`` when given) or a saved
    ``profile.json``; ``tolerance`` is a fraction (0.1 is 10%; ``plumber
    gate --tolerance`` takes the same as ``10%``), and 1 or more is refused.
    Raises AssertionError with the gate's Markdown summary on a regression or
    a new bottleneck, and returns the result when the pipeline passes.
    """
    options = RunOptions(repeats=repeats, steps=steps, duration_s=duration_s,
                         cpu_probe_s=cpu_probe_s)
    result = check(target, baseline, tolerance, script_args, options)
    if not result.passed:
        raise AssertionError(gate_summary(result))
    return result
