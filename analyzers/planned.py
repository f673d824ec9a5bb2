"""The rates a run's applied plan predicted, beside what the run measured.

A profile taken with ``plumber profile --plan`` records the plan's
predictions (:class:`plumber.records.profile.AppliedPlan`). Each is matched
to the pipeline it is for: a settings prediction to the pipeline whose
written root the plan names, an offload prediction to the pipeline holding
the stage at the cut (the service's read, placed there). The measured rate
is the steady one, the window the model predicts, or the whole iteration
when the run recorded none. An offload's prediction is checked for the
workers the user said the service had (``--service-workers``); a client
cannot count them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plumber.analyzers import text
from plumber.analyzers.edits import written_root
from plumber.analyzers.observed import observed_rate, steady_rate
from plumber.records.profile import Pipeline, PlannedRate, Profile, SourceLocation


@dataclass(frozen=True)
class PlanCheck:
    """One prediction of the applied plan and this run's rate for it.

    ``pipeline`` is the id of the pipeline it is for (None when the run built
    none the plan names); ``measured`` that pipeline's rate (None then, or
    when not measured), ``steady`` whether it is the steady rate.
    ``expected`` is the prediction for this run: a settings prediction's
    rate (None when it was made for other settings than the plan's); an
    offload's rate for the workers the user said the service had
    (``--service-workers``; the model's rate for the most it holds when they
    were more), or None when not said, since a client cannot count them.
    ``error`` is ``|expected - measured| / measured``, None without both.
    """

    predicted: PlannedRate
    pipeline: str | None
    measured: float | None
    steady: bool
    expected: float | None
    service_workers: int | None = None

    @property
    def error(self) -> float | None:
        if self.expected is None or self.measured is None:
            return None
        return abs(self.expected - self.measured) / self.measured

    def sentence(self) -> str:
        """What the check says, in a line a user reads."""
        p = self.predicted
        place = f"{p.kind} at {p.file}:{p.line}"
        if p.basis == "offload" and self.service_workers is not None and \
                self.expected is not None:
            said = (f"the plan's offload (after {place}) was predicted "
                    f"{text.rate(self.expected)} with the service's {self.service_workers} "
                    f"worker(s) (as --service-workers said), each on a host like this one")
        elif p.basis == "offload":
            said = (f"the plan's offload (after {place}) was predicted {text.rate(p.rate)} with "
                    f"{p.workers} worker(s), each on a host like this one")
        elif p.for_other_settings:
            said = (f"the plan for the pipeline at {place} holds other settings than the "
                    f"{text.rate(p.rate)} it records was predicted for (changed since the "
                    f"model chose them, by tune --search or by hand), so this run is not "
                    f"checked against it")
        else:
            said = f"the plan for the pipeline at {place} was predicted {text.rate(p.rate)}"
        if self.pipeline is None:
            return f"{said}; this run built no pipeline the plan names"
        if self.measured is None:
            return f"{said}; {self.pipeline}'s rate was not measured in this run"
        window = "after start-up" if self.steady else "over the whole iteration (no steady state)"
        said = f"{said}; {self.pipeline} measured {text.rate(self.measured)} {window}"
        if self.error is not None:
            return f"{said} (prediction error {self.error:.0%})"
        if p.for_other_settings:
            return said
        if self.service_workers is not None:
            return (f"{said}; the plan holds no prediction per worker count, so none for "
                    f"{self.service_workers} (write the plan again with plumber service plan)")
        return (f"{said}; plumber cannot count the service's workers: give --service-workers "
                f"N to set the prediction for N against the run")


def plan_checks(profile: Profile) -> tuple[PlanCheck, ...]:
    """A check per prediction of the plan the run applied (none without one)."""
    applied = profile.applied_plan
    if applied is None:
        return ()
    return tuple(_check(p, profile, applied.service_workers) for p in applied.predicted)


def _check(predicted: PlannedRate, profile: Profile, workers: int | None) -> PlanCheck:
    expected = _expected(predicted, workers)
    pipeline = next((p for p in profile.pipelines if _is_for(predicted, p)), None)
    if pipeline is None:
        return PlanCheck(predicted, None, None, False, expected, workers)
    steady = steady_rate(pipeline)
    measured = steady if steady is not None else observed_rate(pipeline)
    if not math.isfinite(measured) or measured <= 0:
        return PlanCheck(predicted, pipeline.id, None, False, expected, workers)
    return PlanCheck(predicted, pipeline.id, measured, steady is not None, expected, workers)


def _expected(predicted: PlannedRate, workers: int | None) -> float | None:
    """The rate predicted for this run: see :attr:`PlanCheck.expected`."""
    if predicted.basis == "settings":
        return None if predicted.for_other_settings else predicted.rate
    if workers is None or not predicted.rates:
        return None
    return predicted.rates[min(workers, len(predicted.rates)) - 1]


def _is_for(predicted: PlannedRate, pipeline: Pipeline) -> bool:
    """Whether ``predicted`` is for ``pipeline``: its written root (settings), or a stage of
    it at the cut (offload)."""
    if predicted.basis == "settings":
        root = written_root(pipeline)
        return root is not None and root.kind == predicted.kind and \
            _at(root.source, predicted)
    return any(_at(stage.source, predicted) for stage in pipeline.stages)


def _at(source: SourceLocation | None, predicted: PlannedRate) -> bool:
    """Whether ``source`` is the line the plan names: its file given relative to the script's
    folder, or absolute."""
    if source is None or source.line != predicted.line:
        return False
    if predicted.basis == "settings" and source.occurrence != predicted.occurrence:
        return False
    return source.file == predicted.file or source.file.endswith("/" + predicted.file)
