"""``plumber.optimize(make_dataset_or_loader, plan=None)``: a tuned pipeline, in code.

A built ``tf.data.Dataset`` cannot be given new settings, but the function
that builds it can be run again while a plan is applied, exactly as
``plumber run --plan`` does for a script. Without a plan, the pipeline is
profiled briefly from plumber's own loop, a plan is derived from the model,
and the tuned pipeline is measured the same way: if it is not faster, the
pipeline is returned as written, with a warning saying so.

A PyTorch DataLoader is rebuilt from its own attributes with the plan's
settings (:mod:`plumber.torch.optimize`). Without a plan, the loader is
profiled the same way (plumber's loop iterating it), and the rebuilt loader
is measured against it: the original object comes back, with a warning,
unless the rebuilt one is faster.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plumber.tuner.plan import Plan
from plumber.tuner.verify import MIN_GAIN

_SUPPORTED = (
    "plumber.optimize() takes a torch DataLoader, or a function with no arguments that "
    "builds the tf.data pipeline (a built dataset cannot be rebuilt with new settings)"
)


def optimize(
    make_dataset: Callable[[], Any] | Any,
    plan: Plan | str | Path | None = None,
    *,
    steps: int | None = None,
    duration: float | None = 10.0,
) -> Any:
    """The dataset ``make_dataset()`` builds, with ``plan`` (or a derived one) applied.

    ``make_dataset`` may also be a torch DataLoader: a new loader like it,
    with the plan's settings, is returned (the plan must tune one DataLoader;
    without a plan, the original object unless the new one measured faster).
    ``steps``/``duration`` bound each of the two measurements taken when no
    plan is given (as written, then tuned).
    """
    from plumber.torch.optimize import is_loader, optimize_loader, tune_loader

    if is_loader(make_dataset):
        if plan is None:
            return tune_loader(make_dataset, steps=steps, duration=duration)
        return optimize_loader(make_dataset, _loaded(plan))
    if not callable(make_dataset) or hasattr(make_dataset, "element_spec"):
        raise TypeError(_SUPPORTED)
    source = Path(inspect.getsourcefile(make_dataset) or make_dataset.__code__.co_filename)
    if plan is None:
        return _tune_and_verify(make_dataset, source, steps, duration)
    return apply_plan(make_dataset, _loaded(plan), source)


def _loaded(plan: Plan | str | Path | None) -> Plan | None:
    return plan if plan is None or isinstance(plan, Plan) else Plan.load(plan)


def apply_plan(make_dataset: Callable[[], Any], plan: Plan, source: Path) -> Any:
    """Build the dataset with the plan's settings; warn about settings that found no stage."""
    from plumber.tf.apply import PlanApplier

    with PlanApplier(plan, source) as applier:
        dataset = make_dataset()
    for setting in applier.unmatched():
        warnings.warn(
            f"plan stage not found, left as written: {setting.stage} ({setting.stage_id})",
            stacklevel=3,
        )
    return dataset


def _tune_and_verify(
    make_dataset: Callable[[], Any], source: Path, steps: int | None, duration: float | None
) -> Any:
    from plumber.notebook.run import profile
    from plumber.tuner.derive import derive_plan

    before = profile(make_dataset, steps=steps, duration=duration)
    plan = derive_plan(before.profile, before.diagnoses, source)
    if not plan.pipelines:
        warnings.warn(f"no change recommended: {'; '.join(plan.notes)}", stacklevel=3)
        return make_dataset()
    after = profile(lambda: apply_plan(make_dataset, plan, source), steps=steps,
                    duration=duration, cpu_probe=0.0)
    rate_before = before.diagnoses[0].observed_rate
    rate_after = after.diagnoses[0].observed_rate if after.diagnoses else 0.0
    if not rate_after >= MIN_GAIN * rate_before:
        warnings.warn(
            f"the tuned pipeline measured {rate_after:.1f}/s against {rate_before:.1f}/s as "
            f"written: not faster, so it is returned as written", stacklevel=3,
        )
        return make_dataset()
    return apply_plan(make_dataset, plan, source)
