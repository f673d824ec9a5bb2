"""Running a script with a plan in force: what ``run --plan`` and ``profile --plan`` share.

Both load the plan, check that a ``--data-service`` address can take its
offload cut, enter the appliers around the script, and say afterwards,
stage by stage, what the plan changed and what it could not find;
``profile`` also records that, with the rates the plan predicted, in the
profile (:class:`plumber.records.profile.AppliedPlan`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plumber.commands.base import say
from plumber.records import exitcodes

if TYPE_CHECKING:
    from plumber.records.plan import Plan
    from plumber.records.profile import AppliedPlan, PlannedRate


def planned_run(args: argparse.Namespace,
                service_workers: int | None = None) -> PlannedRun | int:
    """The plan of ``--plan``, with its offload applier when ``--data-service`` is given (a
    service of ``service_workers``, when the user said); or the exit status when either
    cannot be used (the reason said)."""
    plan = _loaded_plan(args)
    if isinstance(plan, int):
        return plan
    service = None
    if args.data_service is not None:
        service = _service_applier(args)
        if isinstance(service, int):
            return service
    return PlannedRun(plan, args.plan, service, args.data_service or "", service_workers)


class PlannedRun:
    """A plan to run a script with: its appliers, entered around the script, and then what
    they did and what the plan predicted.

    ``service`` is the applier of the plan's offload cut (None without
    ``--data-service``), ``data_service`` the dispatcher's address and
    ``service_workers`` its workers, when the user said how many.
    """

    def __init__(self, plan: Plan, file: Path, service: Any | None = None,
                 data_service: str = "", service_workers: int | None = None) -> None:
        self.plan = plan
        self.file = file
        self.service = service
        self.data_service = data_service
        self.service_workers = service_workers
        self.appliers: list[Any] = []

    @contextlib.contextmanager
    def in_force(self, script: Path) -> Iterator[None]:
        """The plan's appliers, and the offload's when there is one, entered."""
        from plumber.tuner.appliers import applying

        with contextlib.ExitStack() as active:
            self.appliers = active.enter_context(applying(self.plan, script))
            if self.service is not None:
                active.enter_context(self.service)
            yield

    def changes(self, succeeded: bool) -> list[str]:
        """Stage by stage, what the plan changed and what it could not find; then the offload.

        A run that failed is not reported as the plan applied: the settings
        were in force, but the run may have failed because of them.
        """
        verb = "plan applied" if succeeded else "plan in force"
        lines = []
        for applier in self.appliers:
            for ref, applied in applier.applied.items():
                lines.append(f"{verb} at {ref}: {'; '.join(applied.changes) or 'no change'}")
            lines.extend(setting.not_found() for setting in applier.unmatched())
        if self.service is not None:
            lines.extend(f"offload applied: {line}" for line in self.service.distributed)
            missed = self.service.missed()
            if missed is not None:
                lines.append(missed)
        return lines

    def record(self, succeeded: bool) -> AppliedPlan:
        """The plan as a profile records it: what it changed, the rates it predicted."""
        from plumber.records.profile import AppliedPlan

        return AppliedPlan(file=str(self.file), changes=tuple(self.changes(succeeded)),
                           data_service=self.data_service, predicted=self._predicted(),
                           service_workers=self.service_workers)

    def _predicted(self) -> tuple[PlannedRate, ...]:
        """The plan's finite predictions: per pipeline of settings, and the offload's."""
        from plumber.records.profile import PlannedRate

        predicted = [
            PlannedRate("settings", p.root.file, p.root.line, p.root.kind, p.predicted_rate,
                        p.root.occurrence, for_other_settings=not p.predicts_these_settings)
            for p in self.plan.pipelines
            if p.predicted_rate is not None and math.isfinite(p.predicted_rate)]
        offload = None if self.service is None else self.service.offload
        if offload is not None and offload.predicted_rate is not None and \
                math.isfinite(offload.predicted_rate):
            rates = offload.rates if all(
                r is not None and math.isfinite(r) for r in offload.rates) else ()
            predicted.append(PlannedRate(
                "offload", offload.cut.file, offload.cut.line, offload.cut.kind,
                offload.predicted_rate, offload.cut.occurrence, offload.workers, rates))
        return tuple(predicted)


def _loaded_plan(args: argparse.Namespace) -> Plan | int:
    """The plan ``--plan`` names, warning when it was made for another script; or the exit
    status when it cannot be read (the reason said)."""
    from plumber.records.plan import Plan, PlanError, made_for_another_script

    try:
        plan = Plan.load(args.plan)
    except PlanError as exc:
        say(f"error: {exc}")
        return exitcodes.USAGE
    warning = made_for_another_script(plan, args.script)
    if warning is not None:
        say(f"warning: {warning}")
    return plan


def _service_applier(args: argparse.Namespace) -> Any:
    """The applier for the plan's offload cut, or the exit status when it cannot be used."""
    from plumber.records.offload import read_offload
    from plumber.records.plan import PlanError
    from plumber.tf.servicewatch import host_port, reachable

    try:
        host_port(args.data_service)
        offload = read_offload(args.plan)
    except (ValueError, PlanError) as exc:
        say(f"error: {exc}")
        return exitcodes.USAGE
    if offload is None:
        say(f"error: {args.plan} has no offload section; write one with: plumber "
            f"service plan PROFILE.json {args.script} --plan {args.plan}")
        return exitcodes.USAGE
    if not reachable(args.data_service):
        say(f"error: no tf.data service dispatcher answers at {args.data_service} "
            f"(start one with: plumber service start --workers N)")
        return exitcodes.SERVICE_LOST
    from plumber.tf.apply import ServiceApplier

    return ServiceApplier(offload, args.data_service, args.script)
