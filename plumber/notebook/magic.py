"""``%%plumber``: profile one notebook cell, as ``plumber profile`` profiles a script.

After ``%load_ext plumber``, a cell that starts with ``%%plumber`` runs
under the same instrumentation as a script (tf.data hooks, resource
sampler, thread CPU). The cell's own loop is the consumer, so its training
step counts; pipelines the cell builds keep the source lines that built
them. ``--steps`` and ``--duration`` stop the cell early, as on the command
line. The cell's output is the :class:`~plumber.notebook.result.ProfileResult`
(``prof = _`` keeps it). When the cell raises, the profile of what ran is
shown first and the error is raised again, so "Run all" still stops there.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from plumber.capture.scriptrun import EXIT_INTERRUPTED, ScriptOutcome
from plumber.capture.session import SessionOptions, assemble, instrumented
from plumber.measure.runbounds import checked_cpu_probe, checked_duration, checked_steps
from plumber.notebook.result import ProfileResult
from plumber.records.units import link_rate_bps


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%plumber`` cell magic (called by ``%load_ext plumber``)."""
    ipython.register_magics(PlumberMagics)


def _say(message: str) -> None:
    print(f"plumber: {message}", file=sys.stderr, flush=True)


@magics_class
class PlumberMagics(Magics):
    """The ``%%plumber`` cell magic."""

    @magic_arguments()
    @argument("--steps", type=int, default=None,
              help="stop the cell once this many elements have reached it")
    @argument("--duration", type=float, default=None,
              help="stop the cell after this many seconds")
    @argument("--cpu-probe", type=float, default=2.0, metavar="SECONDS",
              help="time spent afterwards measuring per-stage CPU (0 disables; default 2)")
    @argument("--link-bandwidth", default=None, metavar="RATE",
              help="the network's rate to hosts that could run the pipeline's work "
                   "(10Gb/s, 100Mbit/s, 1.25GB/s), for the offload what-if")
    @cell_magic
    def plumber(self, line: str, cell: str) -> ProfileResult | None:
        """Profile the tf.data pipelines this cell iterates; the cell's output is the result."""
        args = parse_argstring(self.plumber, line)
        for flag, value, check in (("--steps", args.steps, checked_steps),
                                   ("--duration", args.duration, checked_duration),
                                   ("--cpu-probe", args.cpu_probe, checked_cpu_probe)):
            if value is not None:
                try:
                    check(value)
                except ValueError as exc:
                    raise ValueError(f"{flag} {exc}") from None
        link_bps = None
        if args.link_bandwidth is not None:
            try:
                link_bps = link_rate_bps(args.link_bandwidth)
            except ValueError as exc:
                raise ValueError(f"--link-bandwidth: {exc}") from None
        options = SessionOptions(
            steps=args.steps, duration_s=args.duration, cpu_probe_s=args.cpu_probe, notify=_say,
            link_bps=link_bps,
        )
        shell = self.shell
        code = shell.transform_cell(cell)
        # Registered like a cell of its own, so tracebacks show "Cell In[n]" and
        # stage source lines point into the cell.
        name = shell.compile.cache(code, shell.execution_count, raw_code=cell)
        compiled = compile(code, name, "exec")
        failure: BaseException | None = None
        with instrumented(options) as capture:
            try:
                exec(compiled, shell.user_ns)  # noqa: S102 - running the user's cell is the point
                outcome = ScriptOutcome(exit_status=0)
            except BaseException as exc:  # noqa: BLE001 - every ending must leave a profile
                outcome, failure = _ending(exc, capture.hooks)
        bounded_by = capture.hooks.bound_reached if capture.hooks and outcome.bounded else None
        profile = assemble(
            capture, ("%%plumber", *shlex.split(line)), outcome, options,
            bounded_by=bounded_by, subject="the cell",
        )
        result = ProfileResult(profile)
        if failure is None:
            return result
        display(result)
        raise failure


def _ending(exc: BaseException, hooks: Any) -> tuple[ScriptOutcome, BaseException | None]:
    """How the cell ended, and the exception to raise again (None for plumber's own stop)."""
    if hooks is not None and hooks.bound_reached is not None:
        from plumber.measure.runbounds import BoundReached

        # The bound stops the cell by raising BoundReached on the cell's thread,
        # or KeyboardInterrupt when the poller interrupts it (duration).
        if isinstance(exc, (BoundReached, KeyboardInterrupt)):
            return ScriptOutcome(exit_status=0, bounded=True), None
    if isinstance(exc, KeyboardInterrupt):
        return ScriptOutcome(EXIT_INTERRUPTED, "interrupted (Ctrl-C)", interrupted=True), exc
    summary = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
    return ScriptOutcome(exit_status=1, error=summary), exc
