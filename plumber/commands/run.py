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
        from plumber.commands.planned import planned_run

        if script_unusable(args.script):
            return exitcodes.USAGE
        planned = planned_run(args)
        if isinstance(planned, int):
            return planned
        with contextlib.ExitStack() as active:
            active.enter_context(planned.in_force(args.script))
            if planned.service is not None:
                from plumber.tf.servicewatch import ServiceWatch

                active.enter_context(ServiceWatch(
                    args.data_service, _lost, grace_s=args.service_timeout,
                    stall_s=args.service_timeout))
            outcome = run_script(args.script, args.script_args, lambda exc: False)
        if outcome.exit_status != 0:
            say(f"the script failed ({outcome.error or f'exit status {outcome.exit_status}'}) "
                f"with the plan's settings below in force")
        for line in planned.changes(succeeded=outcome.exit_status == 0):
            say(line)
        return outcome.exit_status


def _lost(error: Exception) -> None:
    """End the run: the script waits in tf.data service's GetNext, which nothing can interrupt."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    say(f"error: {error}")
    os._exit(exitcodes.SERVICE_LOST)
