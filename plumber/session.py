"""One profiled run of a script: instrument, run, collect, build the Profile.

The order matters for honesty and for never losing data: hooks and the
resource sampler are installed before the script starts; the script runs to
whatever end it reaches; hooks are removed; only then are the (re-reading)
CPU probes and capacity probes run; and the Profile is assembled even when
some of those steps fail, with a note saying what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import plumber
from plumber.capacity import probe_machine
from plumber.record import Machine, Pipeline, Profile, RunInfo, ThreadCpu
from plumber.sampler import ResourceSampler
from plumber.scriptrun import ScriptOutcome, run_script
from plumber.threadcpu import ThreadCpuTracker


@dataclass
class SessionOptions:
    """How to profile: bounds, probe budgets, sampling interval."""

    steps: int | None = None
    duration_s: float | None = None
    cpu_probe_s: float = 2.0
    sample_interval_s: float = 0.25
    poll_interval_s: float = 0.25
    capacity_cache_dir: str | None = None
    notify: Callable[[str], None] = field(default=lambda message: None)
    #: Entered around the script, inside the instrumentation: how ``tune``
    #: builds the script's pipelines with a plan while measuring them.
    around_script: Callable[[], contextlib.AbstractContextManager[Any]] | None = None


@dataclass(frozen=True)
class SessionResult:
    """The profile and how the script ended."""

    profile: Profile
    outcome: ScriptOutcome


def profile_script(script: Path, args: Sequence[str], options: SessionOptions) -> SessionResult:
    """Run ``script`` under instrumentation and return its Profile."""
    with instrumented(options) as capture:
        around = options.around_script() if options.around_script else contextlib.nullcontext()
        with around:
            outcome = run_script(script, args, _bound_stop_check(capture.hooks))
    bounded_by = capture.hooks.bound_reached if capture.hooks and outcome.bounded else None
    profile = assemble(
        capture, (str(script), *args), outcome, options, bounded_by=bounded_by
    )
    return SessionResult(profile=profile, outcome=outcome)


@dataclass
class Capture:
    """What one instrumented stretch of execution left behind, for :func:`assemble`.

    ``hooks`` is the :class:`~plumber.tf.hooks.TfHooks` that watched it, or
    ``None`` when TensorFlow is not installed. ``notes`` collects what the
    profile should say about the run; callers may add their own.
    """

    started_at: str
    sampler: ResourceSampler
    hooks: Any = None
    notes: list[str] = field(default_factory=list)
    threads: tuple[ThreadCpu, ...] = ()
    duration_s: float = 0.0


@contextlib.contextmanager
def instrumented(options: SessionOptions) -> Iterator[Capture]:
    """Sample resources, track thread CPU and install the tf.data hooks around a block.

    Shared by the script runner and the notebook API, so both observe a run
    the same way. The hooks are removed when the block ends, whatever way it
    ends; the (data re-reading) probes are left to :func:`assemble`.
    """
    start = time.monotonic()
    threads = ThreadCpuTracker()
    threads.start()
    sampler = ResourceSampler(interval_s=options.sample_interval_s, on_sample=threads.poll)
    capture = Capture(
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), sampler=sampler
    )
    with sampler:
        with _tf_hooks(options, capture.notes) as capture.hooks:
            yield capture
        capture.threads = threads.stop()
    capture.duration_s = time.monotonic() - start


def assemble(
    capture: Capture,
    command: Sequence[str],
    outcome: ScriptOutcome,
    options: SessionOptions,
    bounded_by: str | None = None,
    subject: str = "the script",
) -> Profile:
    """Run the CPU and capacity probes and build the Profile of a captured run.

    ``subject`` names what ran (``the script``) in the note written when no
    pipeline was iterated; ``bounded_by`` is the bound that stopped it, if any.
    """
    notes = capture.notes
    pipelines, framework, framework_version, data_paths = _collect(capture.hooks, options, notes)
    machine = _machine(data_paths, options, capture.sampler, notes)
    if not pipelines:
        notes.append(f"no tf.data pipeline was iterated by {subject}")
    run = RunInfo(
        command=tuple(command),
        started_at=capture.started_at,
        duration_s=capture.duration_s,
        exit_status=outcome.exit_status,
        framework=framework,
        framework_version=framework_version,
        python_version=platform.python_version(),
        plumber_version=plumber.__version__,
        error=outcome.error,
        interrupted=outcome.interrupted,
        bounded_by=bounded_by,
        notes=tuple(notes),
    )
    return Profile(
        run=run,
        machine=machine,
        pipelines=pipelines,
        resources=capture.sampler.series(),
        threads=capture.threads,
    )


@contextlib.contextmanager
def _tf_hooks(options: SessionOptions, notes: list[str]) -> Iterator[Any]:
    """TF hooks when TensorFlow is installed, else nothing (noted)."""
    if importlib.util.find_spec("tensorflow") is None:
        notes.append("TensorFlow is not installed: tf.data pipelines cannot be observed")
        yield None
        return
    from plumber.runbounds import RunBounds
    from plumber.tf.hooks import TfHooks

    if "tensorflow" not in sys.modules:
        options.notify("loading TensorFlow")
    bounds = RunBounds(steps=options.steps, duration_s=options.duration_s)
    with TfHooks(bounds, poll_interval_s=options.poll_interval_s, notify=options.notify) as hooks:
        yield hooks


def _bound_stop_check(hooks: Any) -> Callable[[BaseException], bool]:
    def is_bound_stop(exc: BaseException) -> bool:
        if hooks is None:
            return False
        from plumber.runbounds import BoundReached

        return isinstance(exc, BoundReached) or (
            isinstance(exc, KeyboardInterrupt) and hooks.bound_reached is not None
        )

    return is_bound_stop


def _collect(
    hooks: Any, options: SessionOptions, notes: list[str]
) -> tuple[tuple[Pipeline, ...], str, str, list[str]]:
    """Pipelines, framework name/version and data files; failures become notes."""
    if hooks is None:
        return (), "", "", []
    import tensorflow as tf

    from plumber.tf.pipelines import build_pipelines
    from plumber.tf.written import data_files

    try:
        if options.cpu_probe_s > 0 and hooks.pipelines:
            options.notify(f"measuring per-stage CPU time (about {options.cpu_probe_s:g} s)")
        pipelines = build_pipelines(hooks, options.cpu_probe_s)
    except Exception:  # noqa: BLE001 - the run's other data is still worth saving
        traceback.print_exc(file=sys.stderr)
        notes.append("plumber failed to assemble the pipeline statistics (see stderr)")
        pipelines = ()
    paths: list[str] = []
    for watched in hooks.pipelines.values():
        with contextlib.suppress(Exception):
            paths.extend(p for p in data_files(watched.dataset) if p not in paths)
    return pipelines, "tensorflow", tf.__version__, paths


def _machine(
    data_paths: list[str], options: SessionOptions, sampler: Any, notes: list[str]
) -> Machine:
    if data_paths:
        options.notify("probing machine capacity (cached per machine)")
    try:
        return probe_machine(data_paths, cache_dir=options.capacity_cache_dir, sampler=sampler)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"capacity probe failed: {exc}")
        return probe_machine([], cache_dir=options.capacity_cache_dir, sampler=sampler)
