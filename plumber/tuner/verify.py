"""Verify a plan by measurement: as-written and tuned runs of the script, interleaved.

Each round runs the script as written, then with the plan applied (A B A B),
with the same bounds and no CPU probe, each run in a fresh process as the
user runs the script (:func:`measured_profile`), and takes each pipeline's rate (root
elements per second over the time the consumer iterated), which decides;
the tuned runs' steady-window rates are kept beside it, to check the model's
prediction over the window it predicts. Pipelines are
matched by the order in which the script first iterated them. Whether the
plan is faster is decided by :mod:`plumber.analyzers.speedup`, which runs more
rounds while the result is within the noise; :func:`keep_faster` keeps in the
plan only the pipelines it measured faster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from plumber.analyzers.observed import steady_rate
from plumber.analyzers.speedup import Comparison, compare_rounds
from plumber.capture.session import SessionOptions
from plumber.records.plan import Plan
from plumber.records.profile import Profile
from plumber.tuner.freshrun import fresh_profile, measuring_options


def pipeline_rates(profile: Profile) -> tuple[float, ...]:
    """Root elements per second of each pipeline, as the consumer received them."""
    rates = []
    for pipeline in profile.pipelines:
        consumer = pipeline.consumer
        if consumer is None or pipeline.duration_s <= 0:
            rates.append(0.0)
        else:
            rates.append(consumer.steps / pipeline.duration_s)
    return tuple(rates)


def measured_rates(
    script: Path, args: Sequence[str], options: SessionOptions, plan: Plan | None = None,
    reuse_process: bool = False,
) -> tuple[float, ...]:
    """:func:`pipeline_rates` of one measuring run (:func:`measured_profile`)."""
    return pipeline_rates(measured_profile(script, args, options, plan, reuse_process))


def measured_profile(
    script: Path, args: Sequence[str], options: SessionOptions, plan: Plan | None = None,
    reuse_process: bool = False,
) -> Profile:
    """The profile of one measuring run, ``plan`` in force when given.

    The run is a fresh process (:mod:`plumber.tuner.freshrun`) unless
    ``reuse_process`` (``tune --reuse-process``): then it runs in this
    process, with no framework to import again, but after the runs before it,
    which can make it measure faster than the user's own run would.
    Ctrl-C, SIGTERM or SIGHUP during a measuring run is raised again here
    (:func:`plumber.capture.scriptrun.stop_again`): the run's partial rate is no
    measurement, and the user asked for the whole command to stop.
    """
    if not reuse_process:
        return fresh_profile(script, args, options, plan)
    from plumber.capture.scriptrun import stop_again
    from plumber.capture.session import profile_script

    result = profile_script(script, args, measuring_options(options, script, plan))
    stop_again(result.outcome)
    return result.profile


def verify(
    script: Path,
    args: Sequence[str],
    plan: Plan,
    rounds: int,
    options: SessionOptions,
    notify: Callable[[str], None],
    reuse_process: bool = False,
) -> tuple[Comparison, ...]:
    """Interleaved as-written / tuned runs: at least ``rounds``, more while a result is close.

    Each run is :func:`measured_profile`'s (``reuse_process`` as there)."""
    steady: list[tuple[float | None, ...]] = []

    def tuned_rates() -> tuple[float, ...]:
        profile = measured_profile(script, args, options, plan, reuse_process)
        steady.append(tuple(steady_rate(p) for p in profile.pipelines))
        return pipeline_rates(profile)

    compared = compare_rounds(
        lambda: measured_rates(script, args, options, reuse_process=reuse_process),
        tuned_rates, rounds, notify)
    return tuple(
        dataclasses.replace(check, steady_after=tuple(
            run[index] for run in steady if index < len(run) and run[index] is not None))
        for index, check in enumerate(compared))


def keep_faster(plan: Plan, comparisons: Sequence[Comparison]) -> Plan:
    """``plan`` with its measured rates; the pipelines not measured faster move to ``rejected``.

    ``comparisons`` match the plan's pipelines by position. A pipeline the
    verification runs did not see is rejected too: nothing says its plan
    helps. Each rejection adds a note that says why, with its runs.
    """
    kept, rejected, notes = [], [], list(plan.notes)
    for index, pipeline in enumerate(plan.pipelines):
        check = comparisons[index] if index < len(comparisons) else Comparison((), ())
        measured = dataclasses.replace(
            pipeline,
            measured_rate_before=check.median_before,
            measured_rate_after=check.median_after,
            measured_steady_rate_after=check.median_steady_after,
            measured_rates_before=check.before,
            measured_rates_after=check.after,
        )
        if check.faster:
            kept.append(measured)
        else:
            rejected.append(measured)
            notes.append(f"pipeline {index}: {check.refusal('keeping the pipeline as written')}")
    return dataclasses.replace(plan, pipelines=tuple(kept), notes=tuple(notes),
                               rejected=plan.rejected + tuple(rejected))
