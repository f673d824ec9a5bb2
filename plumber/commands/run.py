"""``plumber run --plan PLAN.json SCRIPT [-- ARGS]``: run a script with a plan applied."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plumber import exitcodes
from plumber.commands.base import add_script_arguments, say, script_arguments, script_unusable


class RunCommand:
    name = "run"
    help = "run a script with its tf.data pipelines built from a tuning plan"
    description = (
        "Run SCRIPT unchanged except that the pipelines it builds get the plan's "
        "parallelism, prefetch and cache settings. Exits with the script's own status."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--plan", type=Path, required=True, help="a plan written by tune")
        add_script_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from plumber.scriptrun import run_script
        from plumber.tuner.plan import Plan, PlanError

        if script_unusable(args.script):
            return exitcodes.USAGE
        try:
            plan = Plan.load(args.plan)
        except PlanError as exc:
            print(f"plumber: error: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        from plumber.tf.apply import PlanApplier

        with PlanApplier(plan, args.script) as applier:
            outcome = run_script(args.script, script_arguments(args.script_args),
                                 lambda exc: False)
        report_application(applier)
        return outcome.exit_status


def report_application(applier) -> None:
    """Say, stage by stage, what the plan changed and what it could not find."""
    for ref, applied in applier.applied.items():
        say(f"plan applied at {ref}: {'; '.join(applied.changes) or 'no change'}")
    for setting in applier.unmatched():
        say(f"plan stage not found, left as written: {setting.stage} ({setting.stage_id})")
