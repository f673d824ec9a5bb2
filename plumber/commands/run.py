"""``plumber run --plan PLAN.json SCRIPT [-- ARGS]``: run a script with a plan applied.

With ``--data-service grpc://HOST:PORT`` the plan's offload cut
(:mod:`plumber.records.offload`) is sent to that tf.data service while the
script builds its pipelines, and a service that goes away during the run
ends it with a named error (:mod:`plumber.tf.servicewatch`) instead of the
wait for good tf.data service would make.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from plumber.commands.base import add_script_arguments, duration_seconds, say, script_unusable
from plumber.records import exitcodes
from plumber.tf.servicewatch import DEFAULT_TIMEOUT_S


class RunCommand:
    name = "run"
    help = "run a script with its tf.data pipelines and DataLoaders built from a tuning plan"
    description = (
        "Run SCRIPT unchanged except that the tf.data pipelines and DataLoaders it builds "
        "get the plan's parallelism (workers), prefetch and cache settings. Exits with the "
        "script's own status. With --data-service, the plan's offload cut (written by "
        "plumber service plan) runs on that tf.data service's workers."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--plan", type=Path, required=True, help="a plan written by tune")
        parser.add_argument(
            "--data-service", metavar="grpc://HOST:PORT",
            help="send the plan's offload cut to the tf.data service at this dispatcher")
        parser.add_argument(
            "--service-timeout", type=duration_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
            help=f"with --data-service: seconds without the dispatcher, or waiting for an "
                 f"element (or in a Keras train step reading one), before the run ends as "
                 f"lost (default {DEFAULT_TIMEOUT_S:g})")
        add_script_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from plumber.capture.scriptrun import run_script
        from plumber.records.plan import Plan, PlanError, made_for_another_script

        if script_unusable(args.script):
            return exitcodes.USAGE
        try:
            plan = Plan.load(args.plan)
        except PlanError as exc:
            say(f"error: {exc}")
            return exitcodes.USAGE
        warning = made_for_another_script(plan, args.script)
        if warning is not None:
            say(f"warning: {warning}")
        service = None
        if args.data_service is not None:
            service = _service_applier(args)
            if isinstance(service, int):
                return service
        from plumber.tuner.appliers import applying

        with contextlib.ExitStack() as active:
            appliers = active.enter_context(applying(plan, args.script))
            if service is not None:
                from plumber.tf.servicewatch import ServiceWatch

                active.enter_context(service)
                active.enter_context(ServiceWatch(
                    args.data_service, _lost, grace_s=args.service_timeout,
                    stall_s=args.service_timeout))
            outcome = run_script(args.script, args.script_args, lambda exc: False)
        if outcome.exit_status != 0:
            say(f"the script failed ({outcome.error or f'exit status {outcome.exit_status}'}) "
                f"with the plan's settings below in force")
        for applier in appliers:
            report_application(applier, succeeded=outcome.exit_status == 0)
        if service is not None:
            for line in service.distributed:
                say(f"offload applied: {line}")
            missed = service.missed()
            if missed is not None:
                say(missed)
        return outcome.exit_status


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


def _lost(error: Exception) -> None:
    """End the run: the script waits in tf.data service's GetNext, which nothing can interrupt."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    say(f"error: {error}")
    os._exit(exitcodes.SERVICE_LOST)


def report_application(applier: Any, succeeded: bool = True) -> None:
    """Say, stage by stage, what the plan changed and what it could not find.

    A run that failed is not reported as the plan applied: the settings were
    in force, but the run may have failed because of them.
    """
    verb = "plan applied" if succeeded else "plan in force"
    for ref, applied in applier.applied.items():
        say(f"{verb} at {ref}: {'; '.join(applied.changes) or 'no change'}")
    for setting in applier.unmatched():
        say(setting.not_found())
