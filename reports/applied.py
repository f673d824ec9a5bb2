"""The plan a profiled run applied (``plumber profile --plan``): what it changed, and its
predictions beside the run's rates, for the report and the terminal summary."""

from __future__ import annotations

from dataclasses import dataclass

from plumber.analyzers.planned import plan_checks
from plumber.records.profile import Profile


@dataclass(frozen=True)
class AppliedPlanView:
    """The plan file, the service its offload ran on, what it changed, and the checks."""

    file: str
    data_service: str
    changes: tuple[str, ...]
    checks: tuple[str, ...]


def applied_plan_view(profile: Profile) -> AppliedPlanView | None:
    """The report's section on the applied plan; None when the run applied none."""
    applied = profile.applied_plan
    if applied is None:
        return None
    return AppliedPlanView(
        file=applied.file, data_service=applied.data_service, changes=applied.changes,
        checks=tuple(check.sentence() for check in plan_checks(profile)))


def applied_plan_lines(profile: Profile) -> list[str]:
    """The summary's sentences on the applied plan: which, where its offload ran, its checks."""
    view = applied_plan_view(profile)
    if view is None:
        return []
    service = f", its offload on the tf.data service at {view.data_service}" \
        if view.data_service else ""
    return [f"this run applied the plan {view.file}{service}", *view.checks]
