"""``plumber run --plan PLAN.json SCRIPT [-- ARGS]``: run a script with a plan applied."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from plumber.commands.base import add_script_arguments, say, script_unusable
from plumber.records import exitcodes


class RunCommand:
    name = "run"
    help = "run a script with its tf.data pipelines and DataLoaders built from a tuning plan"
    description = (
        "Run SCRIPT unchanged except that the tf.data pipelines and DataLoaders it builds "
        "get the plan's parallelism (workers), prefetch and cache settings. Exits with the "
        "script's own status."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--plan", type=Path, required=True, help="a plan written by tune")
        add_script_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from plumber.capture.scriptrun import run_script
        from plumber.records.plan import Plan, PlanError, made_for_another_script

        if script_unusable(args.script):
            return exitcodes.USAGE
        try:
            plan = Plan.load(args.plan)
        except PlanError as exc:
            print(f"plumber: error: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        warning = made_for_another_script(plan, args.script)
        if warning is not None:
            say(f"warning: {warning}")
        from plumber.tuner.appliers import applying

        with applying(plan, args.script) as appliers:
            outcome = run_script(args.script, args.script_args, lambda exc: False)
        if outcome.exit_status != 0:
            say(f"the script failed ({outcome.error or f'exit status {outcome.exit_status}'}) "
                f"with the plan's settings below in force")
        for applier in appliers:
            report_application(applier, succeeded=outcome.exit_status == 0)
        return outcome.exit_status


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
