"""``plumber tune --search N``: refine the model's plan by measured trials.

For cases where the model is uncertain (its prediction and the measurement
disagree, or several stages interact), optuna searches the plan's knobs:
the parallelism of every stage the plan sets (1 up to twice the plan's value
or the core count, whichever is larger), and whether each cache and
prefetch the plan places is kept. The model's plan is enqueued as the first
trial, so the search can only add to it. Each trial is one short measured
run of the script with that plan applied, in a fresh process unless
``--reuse-process``; the best plan measured is kept.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plumber.capture.session import SessionOptions
from plumber.records.plan import Plan, StageSetting
from plumber.records.units import rate as rate_text
from plumber.tuner.verify import measured_rates


def search_unavailable() -> str | None:
    """Why ``--search`` cannot run here (optuna is not installed), or None.

    ``tune`` asks before the script runs, so a missing optuna is one line at
    the start rather than a traceback after the profiling run.
    """
    try:
        import optuna  # noqa: F401
    except ImportError:
        return "--search needs optuna: pip install 'plumber-pipelines[tune]'"
    return None


def search_plan(
    script: Path,
    args: Sequence[str],
    plan: Plan,
    trials: int,
    options: SessionOptions,
    notify: Callable[[str], None],
    reuse_process: bool = False,
) -> tuple[Plan, float]:
    """The best of ``trials`` measured variants of ``plan`` and its measured rate (each trial
    a run of :func:`plumber.tuner.verify.measured_profile`, ``reuse_process`` as there)."""
    problem = search_unavailable()
    if problem is not None:
        raise RuntimeError(problem)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = _space(plan)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(_as_params(plan, space))

    def objective(trial: Any) -> float:
        candidate = _suggest(plan, space, trial)
        rate = sum(measured_rates(script, args, options, candidate, reuse_process))
        notify(f"search: trial {trial.number + 1} of {trials}: {rate_text(rate)}")
        return rate

    study.optimize(objective, n_trials=trials)
    best = _suggest(plan, space, optuna.trial.FixedTrial(study.best_params))
    return best, study.best_value


def _space(plan: Plan) -> dict[str, tuple[str, Any]]:
    """Parameter name -> (what it sets, its range or choices)."""
    cores = os.cpu_count() or 1
    space: dict[str, tuple[str, Any]] = {}
    for i, setting in enumerate(_settings(plan)):
        if setting.parallelism is not None:
            space[f"p{i}"] = ("parallelism", (1, max(2 * setting.parallelism, cores)))
        if setting.cache is not None:
            space[f"c{i}"] = ("cache", (True, False))
        if setting.prefetch is not None:
            space[f"f{i}"] = ("prefetch", (True, False))
    return space


def _settings(plan: Plan) -> list[StageSetting]:
    return [s for p in plan.pipelines for s in p.settings]


def _as_params(plan: Plan, space: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, setting in enumerate(_settings(plan)):
        if f"p{i}" in space:
            params[f"p{i}"] = setting.parallelism
        if f"c{i}" in space:
            params[f"c{i}"] = True
        if f"f{i}" in space:
            params[f"f{i}"] = True
    return params


def _suggest(plan: Plan, space: dict[str, tuple[str, Any]], trial: Any) -> Plan:
    """The plan with this trial's values."""
    index = 0
    pipelines = []
    for pipeline in plan.pipelines:
        settings = []
        for setting in pipeline.settings:
            changes: dict[str, Any] = {}
            for name, (knob, domain) in space.items():
                if int(name[1:]) != index:
                    continue
                if knob == "parallelism":
                    changes["parallelism"] = trial.suggest_int(name, *domain)
                elif not trial.suggest_categorical(name, list(domain)):
                    changes[knob] = None
            settings.append(dataclasses.replace(setting, **changes))
            index += 1
        pipelines.append(dataclasses.replace(pipeline, settings=tuple(settings)))
    return dataclasses.replace(plan, pipelines=tuple(pipelines))
