"""The Profile record: the one immutable value that crosses every layer.

Instrumentation builds a :class:`Profile`; analyzers, the tuner and the
renderers only read it. It round-trips through JSON (``to_json`` /
``load``) so a saved profile re-renders without re-running anything. The
schema is documented in ``docs/profile-schema.md``; bump
``SCHEMA_VERSION`` on any incompatible change.

Everything here is plain data: no framework imports, no I/O except the
explicit ``save``/``load`` helpers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumber.records import jsonfile
from plumber.records.kinds import is_loader_root

SCHEMA_VERSION = 2

#: How many of each iterator's latest step times ``ConsumerStats.step_median_s`` is the
#: median of.
RECENT_STEPS = 4096


class ProfileFormatError(ValueError):
    """A profile file that is not valid JSON or not a plumber profile."""


class ProfileVersionError(ValueError):
    """A profile written by an incompatible (usually newer) schema."""


@dataclass(frozen=True)
class SourceLocation:
    """Where the user's code built a stage (the first frame outside the framework).

    ``occurrence`` numbers the stages of one kind built at this line in build
    order (0 for the first), so a line run in a loop, or a one-liner building
    several maps, still names each stage uniquely across re-runs of the script.

    ``built_by`` names the library function the line called that built the
    stage (``keras.src.utils.image_dataset_utils.image_dataset_from_directory``),
    empty when the line built it with the framework's own stage call
    (``dataset.map(...)``, ``DataLoader(...)``): a library's stage has no
    argument for its knobs at the user's line.
    """

    file: str
    line: int
    function: str = ""
    occurrence: int = 0
    built_by: str = ""

    def __str__(self) -> str:
        """``file:line``, the file relative to the working directory when inside it.

        A stage a library built reads ``file:line via keras image_dataset_from_directory``.
        """
        place = f"{_display_path(self.file)}:{self.line}"
        return f"{place} via {self.builder}" if self.built_by else place

    @property
    def builder(self) -> str:
        """``keras image_dataset_from_directory``: the library function that built the stage."""
        return builder_name(self.built_by)


def builder_name(built_by: str) -> str:
    """``keras image_dataset_from_directory`` for a :attr:`SourceLocation.built_by` name."""
    package = built_by.split(".", 1)[0]
    function = built_by.rsplit(".", 1)[-1]
    return function if package == function else f"{package} {function}"


def _display_path(path: str) -> str:
    """``path`` relative to the working folder when it is inside it, else as recorded.

    The script may leave plumber in a folder it removed: then there is no
    working folder to be relative to (the report failed on it).
    """
    try:
        relative = os.path.relpath(path)
    except (ValueError, OSError):
        return path
    return path if relative.startswith(os.pardir) else relative


@dataclass(frozen=True)
class Compression:
    """How a sample of a stage's elements compressed as tf.data service sends them.

    ``distribute`` (compression ``AUTO``, its default) compresses each
    element on the workers and uncompresses it at the training process. A
    few of the stage's elements, read again after the script, were put
    through the same ops: ``raw_bytes`` their tensors' bytes,
    ``compressed_bytes`` the compressed elements' serialized size, and the
    CPU seconds compressing and uncompressing them took, over ``elements``
    elements.
    """

    elements: int
    raw_bytes: int
    compressed_bytes: int
    compress_cpu_s: float
    uncompress_cpu_s: float


@dataclass(frozen=True)
class StageStats:
    """Runtime statistics of one stage over the whole run.

    Times are seconds summed over the stage's threads. ``wall_time_s`` comes
    from TF's autotuning model (``processing_time``); ``cpu_time_s`` is the
    stage's measured CPU time where a measurement exists (differential
    prefix runs), else ``None``: absence is recorded, never guessed.

    ``runqueue_time_s`` is the time the stage's threads were runnable but
    waiting for a core (the scheduler's run-queue delay, ``schedstat``), so
    the wall time splits into computing (CPU), waiting for a core, and the
    rest: waiting for I/O or latency. ``None`` when not measured.
    ``compression`` is how a sample of its elements compressed for tf.data
    service (None when not sampled: a torch stage, a stage read from a
    service, or a run that did not read its pipelines again).
    ``sample_cache_store_s`` / ``sample_cache_read_s`` are the CPU seconds
    plumber's sample cache took to store one of the stage's output samples
    and to read it back, measured on one sample by one process of the
    DataLoader: a cache after the stage pays the first on its first
    pass and the second on every later one. None where not measured (a
    tf.data stage, collate, or a sample the cache cannot store).
    """

    elements: int
    wall_time_s: float
    cpu_time_s: float | None = None
    bytes_produced: int = 0
    bytes_consumed: int = 0
    buffered_elements_mean: float | None = None
    buffer_size: int | None = None
    parallelism: int | None = None
    runqueue_time_s: float | None = None
    compression: Compression | None = None
    sample_cache_store_s: float | None = None
    sample_cache_read_s: float | None = None


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline, as the user wrote it, with what TF ran for it.

    ``kind`` is a framework-neutral verb (``map``, ``batch``, ``prefetch``,
    ``interleave``, ``source``, ``cache``, ``shuffle``, ...); ``op`` is the
    framework's own name for it. ``knobs`` holds the settings as written
    (``parallelism``, ``buffer_size``, ``batch_size``, ``deterministic``,
    ``cache``); ``-1`` means AUTOTUNE. ``as_run`` lists the names of the nodes
    TF actually executed for this stage and ``rewrite`` names the TF rewrite
    that changed it (``map_parallelization``, ``map_and_batch_fusion``...).
    A stage with ``written=False`` was added by the framework.
    ``stats`` is ``None`` when the stage could not be measured, and
    ``unmeasured_reason`` then says why. ``error`` is the exception the
    stage raised during the run (type and message), if any.

    Kind ``workers`` is a pool of worker processes (a torch DataLoader's):
    the stages ``nested_in`` it run one after another for each element on
    one worker, so the pool's ``parallelism`` (its worker count) applies to
    their sum, and its own ``stats`` are the totals of that chain.
    """

    id: str
    kind: str
    op: str
    inputs: tuple[str, ...] = ()
    knobs: Mapping[str, Any] = field(default_factory=dict)
    source: SourceLocation | None = None
    written: bool = True
    as_run: tuple[str, ...] = ()
    rewrite: str | None = None
    nested_in: str | None = None
    stats: StageStats | None = None
    unmeasured_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SteadySpan:
    """One iterator's steady window, placed on the resource samples' clock.

    ``start_s`` and ``end_s`` are the moments of the iterator's first and last
    delivered step, in seconds on the clock of :attr:`TimeSeries.t`, so the
    report can shade the window on its resource charts and state their means
    over it. ``steps`` is how many steps it delivered after the first.
    """

    start_s: float
    end_s: float
    steps: int


@dataclass(frozen=True)
class ConsumerStats:
    """The training loop's side: time blocked waiting for data vs. stepping.

    ``source`` says how it was measured: ``python_next`` (timing around the
    iterator's ``__next__``) or ``keras_callback`` (step times from a Keras
    callback; the wait inside a compiled function is then estimated from
    the final buffer and recorded in ``wait_s`` with ``wait_estimated``).

    ``wait_sd_s`` and ``step_sd_s`` are the standard deviations of the
    per-step wait and step times, over every call but each iterator's first
    (which pays the pipeline's start-up), when timed around ``next()``; None
    otherwise. How much the two rates vary sizes the prefetch buffer
    (:mod:`plumber.analyzers.prefetch`). ``step_median_s`` is the median
    step time over the same calls (the latest :data:`RECENT_STEPS` of each
    iterator or loader): the steady step, which a one-off long one (the
    first call of a ``tf.function`` traces it) does not move; with
    ``tf_model_gaps``, the median of the gaps TF recorded; None where
    neither was recorded.

    The steady window is the iteration after each iterator's first step,
    which pays the start-up (threads, buffers, function tracing):
    ``steady_steps`` steps in ``steady_s`` seconds, during which the
    consumer's process (its own threads, not DataLoader worker processes)
    used ``cpu_s`` seconds of CPU and the loop waited ``steady_wait_s``
    seconds for data. All four are None where not measured (the wait also
    where it was estimated, not timed).
    ``steady_spans`` places each iterator's window on the resource samples'
    clock; empty where not recorded.
    """

    source: str
    steps: int
    wait_s: float
    step_s: float
    wait_estimated: bool = False
    wait_sd_s: float | None = None
    step_sd_s: float | None = None
    step_median_s: float | None = None
    steady_steps: int | None = None
    steady_s: float | None = None
    cpu_s: float | None = None
    steady_spans: tuple[SteadySpan, ...] = ()
    steady_wait_s: float | None = None

    @property
    def stall_is_steady(self) -> bool:
        """Whether :attr:`stall_share` is the steady window's: its wait was timed, and the
        window held time to share it over."""
        return self.steady_wait_s is not None and (self.steady_s or 0.0) > 0

    @property
    def stall_share(self) -> float:
        """Fraction of the loop's time spent waiting on input, over the steady window.

        The window the observed rate and the verdict are taken over, where
        its wait was timed (:attr:`stall_is_steady`); else the whole
        iteration (:attr:`run_stall_share`).
        """
        if not self.stall_is_steady:
            return self.run_stall_share
        wait, seconds = self.steady_wait_s or 0.0, self.steady_s or 0.0
        return min(max(wait / seconds, 0.0), 1.0)

    @property
    def run_stall_share(self) -> float:
        """Fraction of the loop's time spent waiting on input over the whole iteration,
        start-up included."""
        total = self.wait_s + self.step_s
        return self.wait_s / total if total > 0 else 0.0


@dataclass(frozen=True)
class WorkerStats:
    """One worker process of a pipeline: its work and its memory (resident set).

    RSS rising from ``rss_start_bytes`` while the worker runs is how
    copy-on-read of the dataset's Python objects shows (fork shares pages
    until reference counts touch them).
    """

    worker: int
    pid: int
    elements: int
    rss_start_bytes: int
    rss_peak_bytes: int
    rss_end_bytes: int


@dataclass(frozen=True)
class IteratorPass:
    """One iterator's reading of a pipeline: an epoch when it read the data to its end.

    A training loop usually makes a fresh iterator per epoch (``for x in
    dataset`` inside an epoch loop, Keras ``fit``, ``iter(loader)``), so a
    pipeline's iterators, not the pipeline, count the passes over its data.
    ``elements`` is how many root elements the iterator delivered;
    ``complete`` is true when it reached the end of the data (tf.data's
    end of sequence, the loader's ``StopIteration``), false when it was
    abandoned midway (a ``break``, a step bound) or ended on an error.
    """

    elements: int
    complete: bool


@dataclass(frozen=True)
class Pipeline:
    """One iterated pipeline: its stages (root last in ``root``) and consumer.

    ``passes`` lists, in the order they were made, the iterators that
    delivered at least one element; empty where not recorded (profiles
    written before it was).
    """

    id: str
    root: str
    stages: tuple[Stage, ...]
    element_spec: str = ""
    consumer: ConsumerStats | None = None
    duration_s: float = 0.0
    infinite: bool = False
    notes: tuple[str, ...] = ()
    workers: tuple[WorkerStats, ...] = ()
    passes: tuple[IteratorPass, ...] = ()

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    @property
    def is_loader(self) -> bool:
        """Whether this is a torch DataLoader: its root is the worker pool or the pin thread."""
        return any(s.id == self.root and is_loader_root(s.kind) for s in self.stages)


@dataclass(frozen=True)
class TimeSeries:
    """Resource samples taken at a fixed interval during the run.

    ``t`` is seconds since the run started. Every other list has the same
    length. Absent sensors (no GPU) are empty lists, recorded in
    :class:`Machine` as absent.
    """

    t: tuple[float, ...] = ()
    cpu_percent: tuple[float, ...] = ()
    per_core_percent: tuple[tuple[float, ...], ...] = ()
    process_cpu_percent: tuple[float, ...] = ()
    disk_read_bps: tuple[float, ...] = ()
    net_recv_bps: tuple[float, ...] = ()
    net_sent_bps: tuple[float, ...] = ()
    memory_used_bytes: tuple[float, ...] = ()
    process_rss_bytes: tuple[float, ...] = ()
    gpu_util_percent: tuple[float, ...] = ()
    gpu_memory_used_bytes: tuple[float, ...] = ()


@dataclass(frozen=True)
class NetworkRequests:
    """The HTTP requests the run made (object storage reads), in all its processes.

    Measured per request at the HTTP client (urllib3, which boto3 and
    requests use): ``latency`` is the time from sending a request to its
    response headers; ``bytes_received`` the response bodies' declared sizes.
    ``in_flight_max`` is the most requests outstanding at once across
    processes, and ``in_flight_at_first_refusal`` how many were outstanding
    when the server first refused one (HTTP 503/429, e.g. S3 ``SlowDown``),
    during the run or the probe after it (``None`` when it never did).
    ``failures`` counts requests that got no response (connection refused
    or reset, timeouts); ``first_failure`` says
    what the first was. ``available_bps`` and ``probe_latency_s`` come from
    the network probe run after the script (replaying the largest GET,
    several at once); ``probe_basis`` says how, or why there was no probe;
    ``probe_loaded_latency_s`` is the time per request the probe measured
    with ``probe_loaded_in_flight`` requests in flight (its best level).
    ``objects_read`` is how many distinct objects (byte ranges) successful
    GETs read, ``object_reads`` how many such GETs there were, and
    ``object_bytes`` the objects' sizes counted once: ``object_reads /
    objects_read`` is how many times the run read each, and ``object_bytes``
    what a cache of the fetched objects would hold. All three are 0 when some
    requests went unrecorded (beyond :data:`plumber.measure.nettrace.MAX_RECORDS` in a
    process): reads per object are then unknown.
    """

    requests: int
    bytes_received: int
    busy_s: float
    latency_mean_s: float
    latency_p50_s: float
    latency_p90_s: float
    in_flight_max: int
    hosts: tuple[str, ...] = ()
    statuses: Mapping[str, int] = field(default_factory=dict)
    refused: int = 0
    in_flight_at_first_refusal: int | None = None
    failures: int = 0
    first_failure: str | None = None
    available_bps: float | None = None
    probe_latency_s: float | None = None
    probe_basis: str = ""
    probe_loaded_latency_s: float | None = None
    probe_loaded_in_flight: int | None = None
    object_reads: int = 0
    objects_read: int = 0
    object_bytes: int = 0


@dataclass(frozen=True)
class Machine:
    """Capacities of the machine the run used.

    ``disk_read_bps`` is the cold (page-cache bypassed) sequential read
    bandwidth of the filesystem holding the data, or ``None`` when no data
    file was found to probe. ``gpus`` is empty when none is present.
    ``cache_dir`` is where file caches go by default and ``cache_dir_free_bytes``
    the free space of its filesystem (``None`` when unknown). ``link_bps`` is
    the network's rate in bytes/s between this machine and hosts that could
    run the pipeline's work, as the user gave it (never measured; ``None``
    when not given).
    """

    cores_logical: int
    cores_usable: float
    memory_total_bytes: int
    memory_available_bytes: int
    disk_read_bps: float | None = None
    disk_probe_path: str | None = None
    gpus: tuple[Mapping[str, Any], ...] = ()
    gpu_status: str = "absent"
    cache_dir: str | None = None
    cache_dir_free_bytes: int | None = None
    link_bps: float | None = None


#: Roles of a thread group (:attr:`ThreadCpu.role`): the process's main
#: thread (the script's Python), plumber's own threads (the profiler's
#: overhead), threads that kept the name they inherited from the process
#: (the frameworks' pools, which carry no name of their own), and threads
#: with a name of their own.
THREAD_ROLES = ("main", "profiler", "inherited", "named")


@dataclass(frozen=True)
class ThreadCpu:
    """CPU seconds used by a group of same-named threads of one role over the run.

    ``role`` is one of :data:`THREAD_ROLES` (empty in profiles written
    before it was recorded). ``runqueue_s`` is the time the group's threads
    were runnable but waiting for a core (``None`` when not measured).
    """

    name: str
    threads: int
    cpu_time_s: float
    role: str = ""
    runqueue_s: float | None = None


@dataclass(frozen=True)
class PyFrame:
    """One Python code location a sample passed through: function, file and current line.

    ``function`` is the qualified name the sampler read (``Resize.forward``,
    ``<module>``); ``file`` the full path of its source (or ``<frozen ...>``).
    """

    function: str
    file: str
    line: int


@dataclass(frozen=True)
class SampledStack:
    """One distinct Python stack of one thread, and how many samples found it.

    ``frames`` index :attr:`PythonSamples.frames`, outermost first (the
    thread's entry) to innermost (where it was). ``pid`` is the process the
    thread belongs to and ``tid`` the thread's OS id.
    """

    pid: int
    tid: int
    frames: tuple[int, ...]
    samples: int


@dataclass(frozen=True)
class SourceLine:
    """A line of code TensorFlow's AutoGraph generated, and the user's line it was made from.

    Line ``line`` of the generated file came from ``original_line`` of
    ``file``, in the user's function ``function``.
    """

    line: int
    file: str
    original_line: int
    function: str


@dataclass(frozen=True)
class StageCode:
    """A Python function a stage calls while it runs, and where its code lies.

    A tf.data stage runs Python only in the bodies of its ``py_function``,
    ``numpy_function`` or ``from_generator``; a sampled frame of ``file``
    between ``first_line`` and ``last_line`` is in ``stage`` of ``pipeline``.
    A body defined inside the function given to ``map`` runs as the code
    AutoGraph generated from it, in a file of its own: ``generated_from``
    then gives the user's line for each of its lines (empty otherwise).
    """

    pipeline: str
    stage: str
    function: str
    file: str
    first_line: int
    last_line: int
    generated_from: tuple[SourceLine, ...] = ()


@dataclass(frozen=True)
class PythonSamples:
    """The Python stacks py-spy sampled in the script's process and its children (``--hotspots``).

    ``pid`` is the profiled process: its main thread runs the script; the
    other pids are its children (DataLoader workers, whose pids
    :attr:`WorkerStats.pid` holds). ``samples`` counts every sample taken,
    ``dropped_samples`` those of the rarest stacks left out to bound the
    file's size (:data:`plumber.measure.hotspots.MAX_STACKS`): the shares
    the analysis computes are of the samples kept. ``rate_hz`` is the
    sampling rate per thread, so ``samples / rate_hz`` is thread time.
    ``library_roots`` are the folders whose files are not the user's code
    (the standard library, installed packages, plumber itself).
    ``stage_code`` lists the Python functions tf.data stages call.
    ``sampler_cpu_s`` is the CPU py-spy itself used over the run (None:
    not read); it is left out of the run's process CPU
    (:attr:`TimeSeries.process_cpu_percent`).
    """

    sampler: str
    rate_hz: float
    pid: int
    samples: int
    frames: tuple[PyFrame, ...] = ()
    stacks: tuple[SampledStack, ...] = ()
    dropped_samples: int = 0
    library_roots: tuple[str, ...] = ()
    stage_code: tuple[StageCode, ...] = ()
    sampler_cpu_s: float | None = None


@dataclass(frozen=True)
class RunInfo:
    """What was run, how it ended, and with which software."""

    command: tuple[str, ...]
    started_at: str
    duration_s: float
    exit_status: int
    framework: str = ""
    framework_version: str = ""
    python_version: str = ""
    plumber_version: str = ""
    error: str | None = None
    interrupted: bool = False
    bounded_by: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedRate:
    """A rate a plan's model predicted, to set against the run that applied the plan.

    ``basis`` is ``"settings"`` (the plan's per-stage settings, for the
    pipeline whose written root is at ``file``:``line``) or ``"offload"``
    (its cut, at ``file``:``line``, on ``workers`` tf.data service workers).
    ``file`` is as the plan writes it: relative to the script's folder when
    inside it. ``rate`` is in batches/s after start-up; an offload's
    ``rates`` are its rate with 1, 2, ... ``workers`` workers (empty when the
    plan holds none). ``for_other_settings`` says the plan's settings are
    not those ``rate`` was predicted for (changed after the model chose
    them, by ``tune --search`` or by hand): the run is not checked against it.
    """

    basis: str
    file: str
    line: int
    kind: str
    rate: float
    occurrence: int = 0
    workers: int | None = None
    rates: tuple[float, ...] = ()
    for_other_settings: bool = False


@dataclass(frozen=True)
class AppliedPlan:
    """The plan a profiled run was built with (``plumber profile --plan``).

    ``file`` is the plan as given; ``changes`` says, stage by stage, what it
    changed and what it could not find, as the command printed it;
    ``data_service`` is the dispatcher its offload cut ran on (empty when
    none did) and ``service_workers`` how many workers it had, as the user
    said (``--service-workers``; None when not said: a client cannot read
    it from the service); ``predicted`` the rates the plan carries.
    """

    file: str
    changes: tuple[str, ...] = ()
    data_service: str = ""
    predicted: tuple[PlannedRate, ...] = ()
    service_workers: int | None = None


@dataclass(frozen=True)
class Profile:
    """Everything one profiled run produced."""

    run: RunInfo
    machine: Machine
    pipelines: tuple[Pipeline, ...] = ()
    resources: TimeSeries = field(default_factory=TimeSeries)
    threads: tuple[ThreadCpu, ...] = ()
    network: NetworkRequests | None = None
    hotspots: PythonSamples | None = None
    applied_plan: AppliedPlan | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return jsonfile.jsonable(dataclasses.asdict(self))

    def to_json(self, indent: int | None = 1) -> str:
        return jsonfile.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> Path:
        """Write the profile atomically (temp file + rename) and return its path."""
        return jsonfile.save_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if not isinstance(data, Mapping) or "schema_version" not in data:
            raise ProfileFormatError("not a plumber profile (no schema_version)")
        try:
            jsonfile.checked_schema_version(data, SCHEMA_VERSION, "profile")
        except jsonfile.SchemaVersionError as exc:
            raise (ProfileFormatError if exc.malformed else ProfileVersionError)(str(exc)) from None
        from plumber.records.load import build

        try:
            profile = build(cls, data, "")
        except KeyError as exc:
            raise ProfileFormatError(f"malformed profile: {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise ProfileFormatError(f"malformed profile: {exc}") from None
        except RecursionError:
            raise ProfileFormatError("malformed profile: nested too deeply") from None
        for index, pipeline in enumerate(profile.pipelines):
            if all(stage.id != pipeline.root for stage in pipeline.stages):
                raise ProfileFormatError(
                    f"malformed profile: pipelines[{index}].root {pipeline.root!r} names "
                    f"none of its stages"
                )
        _check_hotspots(profile.hotspots)
        return profile

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read a saved profile; raise ProfileFormatError/ProfileVersionError."""
        data = jsonfile.read_json(path, ProfileFormatError, str(path),
                                  missing=f"no such profile: {path}")
        return cls.from_dict(data)


def _check_hotspots(hotspots: PythonSamples | None) -> None:
    """Refuse a sampled stack naming a frame the frame table does not hold."""
    if hotspots is None:
        return
    count = len(hotspots.frames)
    for index, stack in enumerate(hotspots.stacks):
        if any(frame >= count for frame in stack.frames):
            raise ProfileFormatError(
                f"malformed profile: hotspots.stacks[{index}].frames names a frame beyond "
                f"the {count} of hotspots.frames"
            )
