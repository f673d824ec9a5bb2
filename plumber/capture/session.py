"""One profiled run of a script: instrument, run, collect, build the Profile.

The order matters for honesty and for never losing data: hooks and the
resource sampler are installed before the script starts; the script runs to
whatever end it reaches; hooks are removed; only then are the (re-reading)
CPU probes and capacity probes run; and the Profile is assembled even when
some of those steps fail, with a note saying what is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from plumber.capture.gcfreeze import OwnObjectsFrozen
from plumber.capture.scriptrun import ScriptOutcome, run_script
from plumber.measure.capacity import probe_machine
from plumber.measure.hotspots import DEFAULT_RATE_HZ, START_TIMEOUT_S, StackSampler
from plumber.measure.nettrace import RequestTracer
from plumber.measure.runbounds import StoppableSteps
from plumber.measure.sampler import ResourceSampler
from plumber.measure.threadcpu import ThreadCpuTracker
from plumber.records import exitcodes
from plumber.records.profile import (
    Machine,
    Pipeline,
    Profile,
    PythonSamples,
    RunInfo,
    ThreadCpu,
)
from plumber.records.redact import redact_arguments, redact_message, secret_values
from plumber.records.version import __version__
from plumber.tf.servicewatch import DEFAULT_TIMEOUT_S


@dataclass
class SessionOptions:
    """How to profile: bounds, probe budgets, sampling interval."""

    steps: int | None = None
    duration_s: float | None = None
    cpu_probe_s: float = 2.0
    sample_interval_s: float = 0.25
    poll_interval_s: float = 0.25
    capacity_cache_dir: str | None = None
    #: Seconds the network probe may take after the script (0: no probe).
    net_probe_s: float = 2.0
    notify: Callable[[str], None] = field(default=lambda message: None)
    #: Entered around the script, inside the instrumentation: how ``tune``
    #: builds the script's pipelines with a plan while measuring them.
    around_script: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
    #: Record the command line as given: by default the values of secret-looking
    #: arguments and URL credentials are redacted (:mod:`plumber.records.redact`).
    keep_secrets: bool = False
    #: Sample the Python stacks of the process and its workers with py-spy
    #: (``--hotspots``), at ``hotspots_rate_hz`` samples per second per thread.
    hotspots: bool = False
    hotspots_rate_hz: float = DEFAULT_RATE_HZ
    #: Called from another thread when a run's tf.data service went away (its read
    #: would wait for good; :mod:`plumber.tf.servicewatch`), with a function that
    #: builds the run's profile: the caller writes it and ends the process, since the
    #: script never returns. None: such a run waits, as it would without plumber.
    on_service_lost: Callable[[Callable[[], SessionResult]], None] | None = None
    #: Seconds a read from a tf.data service may wait for its element before the run is lost.
    service_timeout_s: float = DEFAULT_TIMEOUT_S
    #: Whether the pipelines may be read again after the run: the per-stage CPU probe
    #: and the randomness check. A run whose service went away may not.
    rereads: bool = True
    #: Bytes/s between this machine and remote workers, as the user gave it
    #: (``--link-bandwidth``); recorded as :attr:`Machine.link_bps`.
    link_bps: float | None = None


@dataclass(frozen=True)
class SessionResult:
    """The profile and how the script ended."""

    profile: Profile
    outcome: ScriptOutcome


def profile_script(script: Path, args: Sequence[str], options: SessionOptions) -> SessionResult:
    """Run ``script`` under instrumentation and return its Profile.

    What is alive as the script begins to import torch (plumber's objects,
    mostly) is kept out of its garbage collections, until it imports
    TensorFlow, if it does (:mod:`plumber.capture.gcfreeze`).

    With ``options.on_service_lost``, a run whose tf.data service goes away
    does not return here: its profile goes to that callback instead.
    """
    lost = None
    if options.on_service_lost is not None:
        lost = functools.partial(_service_lost, (str(script), *args), options)
    with instrumented(options, on_service_lost=lost) as capture:
        around = options.around_script() if options.around_script else contextlib.nullcontext()
        with around, OwnObjectsFrozen():
            outcome = run_script(script, args, _bound_stop_check(capture.hooks))
    bounded_by = capture.hooks.bound_reached if capture.hooks and outcome.bounded else None
    probes = StoppableSteps()
    profile = assemble(
        capture, (str(script), *args), outcome, options, bounded_by=bounded_by, probes=probes
    )
    if probes.stop_signal is not None and outcome.exit_status == 0:
        outcome = dataclasses.replace(outcome, exit_status=128 + probes.stop_signal,
                                      interrupted=True, stop_signal=probes.stop_signal)
    return SessionResult(profile=profile, outcome=outcome)


@dataclass
class Capture:
    """What one instrumented stretch of execution left behind, for :func:`assemble`.

    ``hooks`` holds the framework hooks that watched it (installed when the
    code imported each framework). ``notes`` collects what the profile
    should say about the run; callers may add their own.
    """

    started_at: str
    sampler: ResourceSampler
    hooks: FrameworkHooks | None = None
    notes: list[str] = field(default_factory=list)
    threads: tuple[ThreadCpu, ...] = ()
    duration_s: float = 0.0
    network_traces: list[dict[str, Any]] = field(default_factory=list)
    python_samples: PythonSamples | None = None


def _service_lost(command: Sequence[str], options: SessionOptions, capture: Capture,
                  error: Exception) -> None:
    """Hand over how to build the profile of a run whose tf.data service went away.

    Runs in the service watch's thread while the script waits in a read that
    never returns, so nothing after the script will run: the profile holds
    what the hooks and the sampler have now, without the steps that read the
    pipelines again (per-stage CPU, randomness) or probe the network.
    """

    def profile_of_lost_run() -> SessionResult:
        if capture.hooks is not None and capture.hooks.tf is not None:
            capture.hooks.tf.final_poll()
        capture.duration_s = time.monotonic() - capture.sampler.clock_origin
        capture.notes.append(f"the run was lost: {error}; this profile holds what ran until "
                             f"then, without the probes that follow a run")
        outcome = ScriptOutcome(exitcodes.SERVICE_LOST, error=str(error), interrupted=True)
        unread = dataclasses.replace(options, cpu_probe_s=0.0, net_probe_s=0.0, rereads=False)
        return SessionResult(profile=assemble(capture, command, outcome, unread),
                             outcome=outcome)

    assert options.on_service_lost is not None
    options.on_service_lost(profile_of_lost_run)


@contextlib.contextmanager
def instrumented(
    options: SessionOptions,
    on_service_lost: Callable[[Capture, Exception], None] | None = None,
) -> Iterator[Capture]:
    """Sample resources, track thread CPU and hook the frameworks around a block.

    Shared by the script runner and the notebook API, so both observe a run
    the same way. Each framework's hooks are installed when the block (or
    anything before it) imports the framework, never by importing it here.
    They are removed when the block ends, whatever way it ends; the (data
    re-reading) probes are left to :func:`assemble`. With ``on_service_lost``
    the reads from a tf.data service are watched, and a read that waits
    ``options.service_timeout_s`` calls it with the capture and the error.
    """
    start = time.monotonic()
    threads = ThreadCpuTracker()
    threads.start()
    sampler = ResourceSampler(interval_s=options.sample_interval_s, on_sample=threads.poll)
    capture = Capture(
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), sampler=sampler
    )
    stacks = StackSampler(options.hotspots_rate_hz) if options.hotspots else None
    with sampler:
        with RequestTracer() as requests:
            if stacks is not None:
                stacks.start()
                if stacks.pid is not None:
                    sampler.ignore_process(stacks.pid)
            try:
                lost = None if on_service_lost is None else functools.partial(
                    on_service_lost, capture)
                with FrameworkHooks(options, capture.notes, lost) as capture.hooks:
                    yield capture
            finally:
                capture.network_traces.append(requests.snapshot())
                if stacks is not None:
                    capture.python_samples = _stop_stacks(stacks, capture.notes)
        capture.threads = threads.stop()
    capture.duration_s = time.monotonic() - start


def _probes_stopped(signum: int) -> str:
    """The note of a profile whose probes a signal cut short."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return (f"stopped by {name} while probing after the script ended: the probes not yet "
            f"done (per-stage CPU time, disk bandwidth, network) were skipped")


def _stop_stacks(stacks: StackSampler, notes: list[str]) -> PythonSamples | None:
    """The Python stacks py-spy sampled; when there are none, a note says why."""
    samples = stacks.stop()
    if samples is None:
        notes.append(f"no Python hotspots: {stacks.problem}")
    elif stacks.started_late:
        notes.append(f"py-spy had not started sampling {START_TIMEOUT_S:g} s after it was "
                     f"launched; the script started then, and its first moments were not "
                     f"sampled")
    return samples


def assemble(
    capture: Capture,
    command: Sequence[str],
    outcome: ScriptOutcome,
    options: SessionOptions,
    bounded_by: str | None = None,
    subject: str = "the script",
    probes: StoppableSteps | None = None,
) -> Profile:
    """Run the CPU and capacity probes and build the Profile of a captured run.

    ``subject`` names what ran (``the script``) in the note written when no
    pipeline was iterated; ``bounded_by`` is the bound that stopped it, if any.
    A Ctrl-C, SIGTERM or SIGHUP during the probes skips them, the rest too,
    and the Profile is built from what ran (``probes.stop_signal`` says which
    signal came; the notes say what was skipped).
    Unless ``options.keep_secrets``, the command, the error and the notes are
    recorded with secrets redacted (:mod:`plumber.records.redact`).
    """
    notes = capture.notes
    probes = probes if probes is not None else StoppableSteps()
    unprobed = dataclasses.replace(options, cpu_probe_s=0.0, net_probe_s=0.0)
    origin = capture.sampler.clock_origin
    collected = probes.run(lambda: _collect(capture.hooks, options, notes, origin),
                           lambda: _collect(capture.hooks, unprobed, notes, origin))
    hotspots = _with_stage_code(capture, notes)
    machine = probes.run(
        lambda: _machine(collected.data_paths, options, capture.sampler, notes),
        lambda: _machine([], options, capture.sampler, notes))
    network = probes.run(lambda: _network(capture, options, notes),
                         lambda: _network(capture, unprobed, notes))
    if probes.stop_signal is not None:
        notes.append(_probes_stopped(probes.stop_signal))
    if not collected.pipelines:
        notes.append(f"no tf.data pipeline or torch DataLoader was iterated by {subject}")
    error = outcome.error
    if not options.keep_secrets:
        known = secret_values(command)
        command = redact_arguments(command)
        error = None if error is None else redact_message(error, known)
        notes = [redact_message(note, known) for note in notes]
    run = RunInfo(
        command=tuple(command),
        started_at=capture.started_at,
        duration_s=capture.duration_s,
        exit_status=outcome.exit_status,
        framework=collected.framework,
        framework_version=collected.framework_version,
        python_version=platform.python_version(),
        plumber_version=__version__,
        error=error,
        interrupted=outcome.interrupted,
        bounded_by=bounded_by,
        notes=tuple(notes),
    )
    return Profile(
        run=run,
        machine=machine,
        pipelines=collected.pipelines,
        resources=capture.sampler.series(),
        threads=capture.threads,
        network=network,
        hotspots=hotspots,
    )


def _with_stage_code(capture: Capture, notes: list[str]) -> PythonSamples | None:
    """The sampled stacks with the Python functions the tf.data stages call, to attribute them."""
    samples, hooks = capture.python_samples, capture.hooks
    if samples is None or hooks is None or hooks.tf is None:
        return samples
    from plumber.tf.pycode import stage_python_code

    try:
        return dataclasses.replace(samples, stage_code=stage_python_code(hooks.tf))
    except Exception as exc:  # noqa: BLE001 - the samples are still worth saving
        notes.append(f"the tf.data stages' Python functions could not be read: {exc}")
        return samples


def _network(capture: Capture, options: SessionOptions, notes: list[str]) -> Any:
    """The HTTP requests of the run (main process and DataLoader workers), probed after it."""
    from plumber.measure.netsummary import summarize_network

    traces = list(capture.network_traces)
    hooks = capture.hooks
    if hooks is not None and hooks.torch is not None:
        traces.extend(hooks.torch.network_traces())
    if any(trace.get("requests") for trace in traces) and options.net_probe_s > 0:
        options.notify(f"probing the network (about {options.net_probe_s:g} s)")
    try:
        return summarize_network(traces, probe_budget_s=options.net_probe_s)
    except Exception as exc:  # noqa: BLE001 - the run's other data is still worth saving
        notes.append(f"the network summary failed: {exc}")
        return None


class FrameworkHooks:
    """The hooks of every framework the profiled code imports, each installed as it does.

    A torch script never loads TensorFlow and a tf.data script never loads
    torch: an :class:`~plumber.capture.importwatch.ImportWatch` installs a
    framework's hooks right after the code imports it (at once when it
    already is). Leaving the context removes them all, last installed first.
    """

    def __init__(self, options: SessionOptions, notes: list[str],
                 on_service_lost: Callable[[Exception], None] | None = None) -> None:
        self.options = options
        self.notes = notes
        self.on_service_lost = on_service_lost
        self.tf: Any = None
        self.torch: Any = None
        self._stack = contextlib.ExitStack()

    @property
    def bound_reached(self) -> str | None:
        """The bound (``steps``/``duration``) that stopped the run, if any framework hit one."""
        for hooks in (self.tf, self.torch):
            if hooks is not None and hooks.bound_reached is not None:
                return str(hooks.bound_reached)
        return None

    def __enter__(self) -> FrameworkHooks:
        from plumber.capture.importwatch import ImportWatch

        watch = ImportWatch({"tensorflow": self._install_tf, "torch": self._install_torch})
        self._stack.enter_context(watch)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)

    def _bounds(self) -> Any:
        from plumber.measure.runbounds import RunBounds

        return RunBounds(steps=self.options.steps, duration_s=self.options.duration_s)

    def _install_tf(self) -> None:
        from plumber.tf.hooks import TfHooks

        hooks = TfHooks(self._bounds(), poll_interval_s=self.options.poll_interval_s,
                        notify=self.options.notify)
        self.tf = self._install(hooks, "tf.data")
        if self.tf is not None and self.on_service_lost is not None:
            from plumber.tf.servicewatch import ServiceWatch

            self._install(ServiceWatch(None, self.on_service_lost, grace_s=math.inf,
                                       stall_s=self.options.service_timeout_s),
                          "tf.data service watch")

    def _install_torch(self) -> None:
        from plumber.torch.hooks import TorchHooks

        self.torch = self._install(TorchHooks(self._bounds()), "DataLoader")

    def _install(self, hooks: Any, what: str) -> Any:
        """Enter ``hooks``; a failure is noted, never raised into the user's import."""
        try:
            return self._stack.enter_context(hooks)
        except Exception:  # noqa: BLE001 - the script must run unprofiled rather than fail
            traceback.print_exc(file=sys.stderr)
            self.notes.append(f"plumber could not install its {what} hooks (see stderr)")
            return None


def _bound_stop_check(hooks: Any) -> Callable[[BaseException], bool]:
    def is_bound_stop(exc: BaseException) -> bool:
        if hooks is None:
            return False
        from plumber.measure.runbounds import BoundReached

        return isinstance(exc, BoundReached) or (
            isinstance(exc, KeyboardInterrupt) and hooks.bound_reached is not None
        )

    return is_bound_stop


@dataclass(frozen=True)
class Collected:
    """What framework hooks collected: pipelines, framework name and version, data files read.

    One per framework (:func:`_collect_tf`, :func:`_collect_torch`), and one
    joining them (:func:`_collect`).
    """

    pipelines: tuple[Pipeline, ...] = ()
    framework: str = ""
    framework_version: str = ""
    data_paths: tuple[str, ...] = ()


def _collect(
    hooks: FrameworkHooks | None, options: SessionOptions, notes: list[str], clock_origin: float
) -> Collected:
    """Pipelines, framework name(s)/version(s) and data files; failures become notes.

    ``clock_origin`` is the resource samples' time 0, on which the pipelines'
    steady windows are placed.

    The framework is the one whose pipelines ran; when both did it reads
    ``tensorflow+torch`` (versions likewise joined by `` + ``); when
    neither did, the ones the code imported.
    """
    if hooks is None:
        return Collected()
    tf_part = None
    if hooks.tf is not None:
        tf_part = _collect_tf(hooks.tf, options, notes, clock_origin)
    torch_part = None
    if hooks.torch is not None:
        first_index = len(tf_part.pipelines) if tf_part else 0
        torch_part = _collect_torch(hooks.torch, first_index, notes, clock_origin)
    parts = [p for p in (tf_part, torch_part) if p is not None]
    ran = [p for p in parts if p.pipelines] or parts
    return Collected(
        pipelines=tuple(pipeline for part in parts for pipeline in part.pipelines),
        framework="+".join(p.framework for p in ran),
        framework_version=" + ".join(p.framework_version for p in ran),
        data_paths=tuple(path for part in parts for path in part.data_paths),
    )


def _collect_torch(
    hooks: Any, first_index: int, notes: list[str], clock_origin: float
) -> Collected:
    import torch

    try:
        pipelines = hooks.pipelines(first_index, clock_origin)
    except Exception:  # noqa: BLE001 - the run's other data is still worth saving
        traceback.print_exc(file=sys.stderr)
        notes.append("plumber failed to assemble the DataLoader statistics (see stderr)")
        pipelines = ()
    return Collected(pipelines, "torch", str(torch.__version__))


def _collect_tf(
    hooks: Any, options: SessionOptions, notes: list[str], clock_origin: float
) -> Collected:
    import tensorflow as tf

    from plumber.tf.pipelines import build_pipelines
    from plumber.tf.written import data_files

    try:
        if options.cpu_probe_s > 0 and hooks.pipelines:
            options.notify(f"measuring per-stage CPU time (about {options.cpu_probe_s:g} s)")
        pipelines = build_pipelines(hooks, options.cpu_probe_s if options.rereads else 0.0,
                                    clock_origin, check_randomness=options.rereads)
    except Exception:  # noqa: BLE001 - the run's other data is still worth saving
        traceback.print_exc(file=sys.stderr)
        notes.append("plumber failed to assemble the pipeline statistics (see stderr)")
        pipelines = ()
    paths: list[str] = []
    for watched in hooks.pipelines.values():
        with contextlib.suppress(Exception):
            paths.extend(p for p in data_files(watched.dataset) if p not in paths)
    return Collected(pipelines, "tensorflow", tf.__version__, tuple(paths))


def _machine(
    data_paths: Sequence[str], options: SessionOptions, sampler: Any, notes: list[str]
) -> Machine:
    if data_paths:
        options.notify("probing machine capacity (cached per machine)")
    try:
        machine = probe_machine(data_paths, cache_dir=options.capacity_cache_dir,
                                sampler=sampler)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"capacity probe failed: {exc}")
        machine = probe_machine([], cache_dir=options.capacity_cache_dir, sampler=sampler)
    return dataclasses.replace(machine, link_bps=options.link_bps)
