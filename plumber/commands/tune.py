"""``plumber tune SCRIPT [-o PLAN.json] [-- ARGS]``: profile, plan, verify."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from plumber.analyzers.speedup import DEFAULT_ROUNDS, MAX_ROUNDS, runs_of
from plumber.commands.base import (
    add_script_arguments,
    non_negative_int,
    positive_int,
    say,
    script_unusable,
)
from plumber.commands.profile import (
    RUN_FILES,
    RunFilesNotWritten,
    add_profiling_options,
    default_output_dir,
    profiling_run,
    session_options,
)
from plumber.measure.runbounds import Terminated
from plumber.records import exitcodes, units

if TYPE_CHECKING:
    from plumber.capture.session import SessionOptions
    from plumber.records.plan import Plan
    from plumber.records.profile import Profile


class TuneCommand:
    name = "tune"
    help = "profile a script, derive a tuning plan, verify it by measurement"
    description = (
        "Profile SCRIPT, derive a plan (parallelism, prefetch, cache placement) from the "
        "performance model, measure the script as written and with the plan in interleaved "
        "runs, and write the plan only if it is faster beyond the run-to-run noise. Writes "
        "plan.json, profile.json and report.html. Exits with the script's status from the "
        "profiling run."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_script_arguments(parser, verb="tune")
        parser.add_argument("-o", "--output", type=Path, default=None,
                            help="plan file to write (default: plan.json in the output folder)")
        parser.add_argument("--search", type=non_negative_int, default=0, metavar="N",
                            help="refine the model's plan with N measured optuna trials")
        parser.add_argument("--reuse-process", action="store_true",
                            help="measure in tune's own process instead of a fresh one per "
                            "run: no framework import per run, but a run after others can "
                            "measure faster than the script run afresh")
        parser.add_argument("--rounds", type=positive_int, default=DEFAULT_ROUNDS,
                            help=f"interleaved verification rounds (default {DEFAULT_ROUNDS}); "
                            f"a result within the noise gets more, up to {MAX_ROUNDS}")
        add_profiling_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        if script_unusable(args.script):
            return exitcodes.USAGE
        if args.search:
            from plumber.tuner.search import search_unavailable

            problem = search_unavailable()
            if problem is not None:
                say(f"error: {problem}")
                return exitcodes.USAGE
        from plumber.records.files import OutputError, checked_outputs
        from plumber.records.offload import save_keeping_offload
        from plumber.reports.html import write_html
        from plumber.tuner.derive import derive_plan

        out_dir = args.output.parent if args.output else default_output_dir(args.script)
        try:
            outputs = checked_outputs(
                {"plan": args.output or out_dir / "plan.json",
                 **{what: out_dir / name for what, name in RUN_FILES.items()}},
                {"script": args.script},
            )
        except OutputError as exc:
            say(f"error: {exc}")
            return exitcodes.USAGE
        plan_path = outputs["plan"]
        try:
            # The verdict the plan follows from, printed as ``plumber profile`` prints it.
            result, rendered = profiling_run(args, outputs["profile"], outputs["report"])
        except RunFilesNotWritten as failed:
            return failed.exit_status
        if result.outcome.exit_status != 0:
            say("the script failed while profiling; no plan derived")
            return result.outcome.exit_status
        plan = derive_plan(result.profile, rendered.diagnoses, args.script)
        for note in plan.notes:
            say(note)
        from plumber.tuner.freshrun import MeasuringRunFailed

        try:
            plan = _measured(plan, args, session_options(args))
        except (KeyboardInterrupt, Terminated) as stop:
            say("stopped while measuring the plan; no plan written")
            return stop.exit_status if isinstance(stop, Terminated) else exitcodes.INTERRUPTED
        except MeasuringRunFailed as failed:
            say(f"error: {failed}; no plan written")
            return exitcodes.INTERNAL
        _print_plan(plan, result.profile)
        try:
            kept = save_keeping_offload(plan, plan_path)
        except OSError as exc:
            say(f"error: the plan could not be written ({exc}); the profile is saved at "
                f"{outputs['profile']}")
            return exitcodes.USAGE
        try:
            write_html(rendered.report_path, result.profile, rendered.diagnoses, plan)
        except OSError as exc:
            say(f"error: the report could not be written with the plan ({exc}); the plan is "
                f"saved at {plan_path}")
            return exitcodes.USAGE
        if kept is not None:
            say(f"kept the offload section of the plan it replaced (distribute after "
                f"{kept.cut}, {kept.workers} worker(s)): it was planned from an earlier "
                f"profile; write it again with plumber service plan")
        say(f"plan: {plan_path}")
        say(f"report: {rendered.report_path}")
        return exitcodes.OK


def _measured(plan: Plan, args: argparse.Namespace, options: SessionOptions) -> Plan:
    """The plan after the optional search and the verification runs, keeping what is faster.

    Ctrl-C, SIGTERM or SIGHUP during one of the runs is raised again from
    here (:func:`plumber.tuner.verify.measured_rates`), so tune stops.
    """
    from plumber.tuner.verify import keep_faster, verify

    if plan.pipelines and args.search:
        from plumber.tuner.search import search_plan

        plan, best = search_plan(args.script, args.script_args, plan, args.search, options, say,
                                 args.reuse_process)
        say(f"search: best plan measured {units.rate(best)}")
    if plan.pipelines:
        check = verify(args.script, args.script_args, plan, args.rounds, options, say,
                       args.reuse_process)
        noted = len(plan.notes)
        plan = keep_faster(plan, check)
        for note in plan.notes[noted:]:
            say(note)
    return plan


def _print_plan(plan: Plan, profile: Profile) -> None:
    """Each kept pipeline's measured outcome and its edits, worded as the report words them."""
    from plumber.analyzers.edits import is_loader, outcome, profiled_pipeline, stage_edits

    if not plan.pipelines:
        say("no change recommended")
        return
    script_dir = Path(plan.script).resolve().parent
    for pipeline in plan.pipelines:
        measured = outcome(pipeline, kept=True) + runs_of(pipeline)
        say(f"pipeline rooted at {pipeline.root}: {measured}")
        profiled = profiled_pipeline(pipeline, profile, script_dir)
        stages = {s.id: s for s in profiled.stages} if profiled is not None else {}
        for setting in pipeline.settings:
            edits = stage_edits(setting, stages.get(setting.stage_id), is_loader(pipeline))
            say(f"  edit {setting.stage}: {'; '.join(str(e) for e in edits)}")
