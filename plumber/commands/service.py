"""``plumber service start|plan``: a tf.data service to offload preprocessing to, and the cut.

``start`` runs a dispatcher and N workers on this machine (or, with
``--dispatcher``, N workers joining a dispatcher elsewhere), prints the
address clients use on stdout, and stops them on Ctrl-C or SIGTERM.
``plan`` writes the offload cut the analysis chose for a profile into a plan
file, for ``plumber run --plan PLAN --data-service ADDRESS``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from pathlib import Path

from plumber.capture.stdio import write_now
from plumber.commands.base import non_negative_int, say
from plumber.records import exitcodes


class ServiceCommand:
    name = "service"
    help = "start a tf.data service here, or plan the cut that runs on one"
    description = (
        "start: run a tf.data service dispatcher and N workers on this machine until Ctrl-C "
        "or SIGTERM (with --dispatcher, only workers that join that dispatcher). plan: write "
        "the offload cut the analysis of PROFILE chose into a plan, for plumber run --plan "
        "PLAN --data-service ADDRESS."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        start = actions.add_parser("start", help="start a dispatcher and workers",
                                   allow_abbrev=False)
        start.add_argument("--workers", type=non_negative_int, required=True, metavar="N",
                           help="how many workers to start here")
        start.add_argument("--port", type=_port, default=0, metavar="P",
                           help="the dispatcher's port (default: a free one)")
        start.add_argument("--dispatcher", metavar="HOST:PORT", default=None,
                           help="join this dispatcher instead of starting one")
        start.add_argument("--host", default=None, metavar="NAME",
                           help="the name clients reach this machine by (default: localhost, "
                                "or this machine's name with --dispatcher)")
        plan = actions.add_parser("plan", help="write a profile's offload cut into a plan",
                                  allow_abbrev=False)
        plan.add_argument("profile", type=Path, metavar="PROFILE.json")
        plan.add_argument("script", type=Path, metavar="SCRIPT",
                          help="the script the profile ran (stages are named relative to it)")
        plan.add_argument("--plan", type=Path, default=Path("plan.json"), metavar="PLAN.json",
                          help="the plan to add the cut to, created if missing "
                               "(default: plan.json)")

    def run(self, args: argparse.Namespace) -> int:
        if args.action == "start":
            return _start(args)
        return _plan(args)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 0 to 65535")
    return value


def _start(args: argparse.Namespace) -> int:
    """Start the servers, print the address, and wait for Ctrl-C or SIGTERM."""
    if args.dispatcher is None and args.workers == 0 and args.port == 0:
        say("note: a dispatcher without workers on a free port; workers join it with "
            "plumber service start --dispatcher HOST:PORT --workers N")
    if args.dispatcher is not None and args.workers == 0:
        say("error: --dispatcher starts workers only: give --workers 1 or more")
        return exitcodes.USAGE
    from plumber.tf.servicewatch import reachable

    if args.dispatcher is None and args.port and reachable(f"localhost:{args.port}"):
        # gRPC binds with SO_REUSEPORT: a second dispatcher would share the port silently.
        say(f"error: port {args.port} is in use on this machine")
        return exitcodes.USAGE
    host = args.host or ("localhost" if args.dispatcher is None else socket.getfqdn())
    stopping = (signal.SIGINT, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)  # taken by sigwait, not a handler
    from plumber.tf.service import start_service

    try:
        service = start_service(args.workers, args.port, args.dispatcher, host)
    except RuntimeError as exc:
        say(f"error: {exc}")
        return exitcodes.USAGE
    workers = ", ".join(service.worker_addresses()) or "none yet"
    role = "dispatcher" if args.dispatcher is None else "workers for the dispatcher"
    say(f"tf.data service {role} at {service.target}, {args.workers} worker(s) here "
        f"({workers}); Ctrl-C or SIGTERM stops them")
    write_now(sys.stdout, f"{service.target}\n")
    received = signal.sigwait(stopping)
    service.stop()
    say(f"tf.data service stopped ({signal.Signals(received).name})")
    return exitcodes.OK


def _plan(args: argparse.Namespace) -> int:
    """Write the cut of the first tf.data pipeline the analysis offloads into the plan."""
    from plumber.analyzers.diagnose import scene
    from plumber.analyzers.offload import TF_SERVICE, offload, reason
    from plumber.records.offload import OffloadPlan, write_offload
    from plumber.records.plan import PlanError, StageRef
    from plumber.records.profile import Profile, ProfileFormatError, ProfileVersionError
    from plumber.records.units import rate

    try:
        profile = Profile.load(args.profile)
    except (ProfileFormatError, ProfileVersionError) as exc:
        say(f"error: {exc}")
        return exitcodes.USAGE
    for pipeline in profile.pipelines:
        chosen = offload(scene(profile, pipeline))
        if chosen is None or chosen.engine != TF_SERVICE or chosen.cut.source is None:
            continue
        script_dir = args.script.resolve().parent
        section = OffloadPlan(
            cut=StageRef.of(chosen.cut.source, chosen.cut.kind, script_dir),
            stage_id=chosen.cut.id, processing_mode=chosen.processing_mode,
            max_outstanding_requests=chosen.max_outstanding_requests,
            workers=chosen.workers, predicted_rate=chosen.predicted_rate,
            reason=reason(chosen), rates=chosen.rates)
        try:
            written = write_offload(args.plan, section, str(args.script))
        except (PlanError, OSError) as exc:
            say(f"error: {exc}")
            return exitcodes.USAGE
        say(f"offload of {pipeline.id} written to {written}: distribute after "
            f"{section.cut} ({section.processing_mode}, {section.workers} worker(s) "
            f"predicted to reach {rate(chosen.predicted_rate)})")
        return exitcodes.OK
    say(f"error: nothing to offload in {args.profile}: no tf.data pipeline is "
        f"CPU-bound with every usable core busy and has stages that can move to workers")
    return exitcodes.USAGE
