"""Per-stage quantities of the operational model (README.md, How it works, step 5).

The unit of work is one root element (what the consumer receives). For each
stage: its visit ratio (elements per root element), its CPU and wall demand
(seconds per root element), the most root elements per second it can
deliver at the parallelism it ran with, and the resource its work is bound
by. A stage without statistics stays in the result as ``unmeasured``.

A worker pool (a torch DataLoader's) is one stage to the model: its
statistics are the totals of the stages its workers run in series, which
stay in the result as a breakdown (``pool`` set) and are not counted twice.

A stage's wall time splits into computing (its CPU time), waiting for a
core (runnable on the scheduler's run queue, where measured) and the rest,
waiting for I/O or latency. A stage that waits mostly for a core is
oversubscribed: more calls or workers than cores to run them, which more
calls cannot help and fewer lose nothing by. The run queue is read per
worker process for a DataLoader's pool; a tf.data stage runs on the
framework's unnamed threads, shared by every stage, so its core wait is
estimated from theirs: their run-queue seconds per CPU second, times the
stage's CPU time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from plumber.analyzers import text
from plumber.analyzers.observed import consumer_rate
from plumber.analyzers.results import StageAnalysis
from plumber.analyzers.topology import parallelism, pool_of
from plumber.records.kinds import POOL, SERVICE
from plumber.records.profile import Pipeline, Stage, StageStats, ThreadCpu

#: A stage whose own time is below this share of the pipeline's total is
#: negligible: never a bottleneck.
NEGLIGIBLE_SHARE = 0.02

#: Kinds that only hand elements on. Their measured own time is thread
#: hand-off overhead (prefix runs charge it to them), not work a bound could
#: rest on; their CPU still counts toward the CPU bound.
PASS_THROUGH = frozenset({"prefetch", "repeat", "take", "skip", "config"})

#: Above this share of wall time not spent on CPU, a stage waits (I/O, latency).
WAITING = 0.5

#: Above this share of usable cores busy, a waiting stage most likely waits
#: for a core, not for I/O: wall time then includes time spent runnable.
SATURATED = 0.85

#: A stage that waits at least this share of its wall time for a core, and
#: for a core more than for anything else, is oversubscribed.
OVERSUBSCRIBED = 0.25


#: Bytes one core receives and unpacks per second at the training process from a
#: tf.data service (an assumption: a copy out of the gRPC message; compression
#: would cost more). A service read's CPU is estimated from it where the read
#: was not measured (it is never read again for a CPU probe).
RECEIVE_BPS_PER_CORE = 1e9

#: The frameworks' threads must have computed at least this long for their
#: run-queue wait per CPU second to stand for a stage's.
MIN_THREAD_CPU_S = 0.5


def core_wait_per_cpu(threads: Sequence[ThreadCpu]) -> float | None:
    """Seconds the frameworks' unnamed threads waited for a core per second they computed.

    Those are the threads that kept the process's name (tf.data's pools);
    None when they were not measured or computed too little to tell.
    """
    inherited = [t for t in threads if t.role == "inherited"]
    cpu = sum(t.cpu_time_s for t in inherited)
    if cpu < MIN_THREAD_CPU_S or any(t.runqueue_s is None for t in inherited):
        return None
    return sum(t.runqueue_s or 0.0 for t in inherited) / cpu


@dataclass(frozen=True)
class WallSplit:
    """Shares of a stage's wall time: computing, waiting for a core, waiting for I/O or latency.

    ``core`` is None when the run-queue wait was not measured; ``other`` is
    then all the time not spent on a CPU. The three shares sum to one.
    """

    computing: float
    core: float | None
    other: float


def split_wall(wall_s: float, cpu_s: float, runqueue_s: float | None) -> WallSplit | None:
    """Split ``wall_s`` seconds into computing, waiting for a core and the rest.

    CPU and run-queue times are read from other clocks than the wall time,
    so each is clamped to what is left of the wall: computing first, then
    the core wait, then the rest. None without a positive wall time.
    """
    if not (wall_s > 0 and math.isfinite(wall_s) and math.isfinite(cpu_s)):
        return None
    computing = min(max(cpu_s, 0.0), wall_s)
    if runqueue_s is None or not math.isfinite(runqueue_s):
        return WallSplit(computing / wall_s, None, 1.0 - computing / wall_s)
    core = min(max(runqueue_s, 0.0), wall_s - computing)
    return WallSplit(computing / wall_s, core / wall_s, (wall_s - computing - core) / wall_s)


def oversubscribed(analysis: StageAnalysis, cores: float) -> bool:
    """True when the stage waited mostly for a core with more calls than ``cores`` to run them.

    With no more calls than cores, a stage that waits for one waits for other
    threads or processes: fewer calls would not help it.
    """
    return analysis.parallelism > cores and _waits_for_cores(
        analysis.core_wait_fraction, analysis.wait_fraction
    )


def pool_members(analyses: Sequence[StageAnalysis], pool_id: str | None) -> list[StageAnalysis]:
    """The stages the workers of pool ``pool_id`` run (none when it is no pool)."""
    return [a for a in analyses if a.pool is not None and a.pool == pool_id]


def busiest_member(members: Sequence[StageAnalysis]) -> StageAnalysis | None:
    """The member stage a worker pool's workers spend most of their time in, by its measured
    wall demand; None for no members or no time measured in them."""
    if sum(a.wall_demand_s or 0.0 for a in members) <= 0:
        return None
    return max(members, key=lambda a: a.wall_demand_s or 0.0)


def _waits_for_cores(core: float | None, wait: float | None) -> bool:
    """A core wait of at least :data:`OVERSUBSCRIBED`, and no smaller than the other waits."""
    if core is None or wait is None:
        return False
    return core >= OVERSUBSCRIBED and core >= wait - core


def without_core_wait(analysis: StageAnalysis) -> float | None:
    """The stage's wall time per root element once it no longer waits for a core."""
    wall = analysis.wall_demand_s
    if wall is None:
        return None
    return wall * (1.0 - (analysis.core_wait_fraction or 0.0))


def cpu_demand(analysis: StageAnalysis) -> float | None:
    """CPU-seconds per root element, the wall demand standing in where CPU was not measured."""
    if analysis.cpu_demand_s is not None:
        return analysis.cpu_demand_s
    return analysis.wall_demand_s


def _stage_cpu_s(stage: Stage) -> float | None:
    """The stage's measured CPU seconds; for a service read not measured, the estimate
    of receiving its bytes (its wall time is waiting for the service, not computing)."""
    stats = stage.stats
    if stats is None:
        return None
    cpu = stats.cpu_time_s
    if cpu is not None and math.isfinite(cpu):
        return cpu
    if SERVICE in stage.knobs:
        return stats.bytes_produced / RECEIVE_BPS_PER_CORE
    return None


def cpu_seconds_per_root(pipeline: Pipeline, roots: int) -> float:
    """CPU demand of the whole pipeline per root element (wall where CPU is missing)."""
    total = 0.0
    for stage in pipeline.stages:
        stats = stage.stats
        if stats is None or pool_of(pipeline, stage) is not None:
            continue
        cpu = _stage_cpu_s(stage)
        seconds = cpu if cpu is not None else stats.wall_time_s
        total += seconds if math.isfinite(seconds) else 0.0
    return total / roots


def analyse_stages(
    pipeline: Pipeline,
    roots: int,
    cpu_saturated: bool,
    disk_busy: bool,
    cores: float,
    queued_per_cpu: float | None = None,
) -> tuple[StageAnalysis, ...]:
    """The model's view of every stage of ``pipeline``, in the pipeline's order.

    ``cpu_saturated`` says the cores were (nearly) all busy, so a stage whose
    wall time exceeds its CPU time is waiting for a core; ``disk_busy`` says
    the disk read near its measured bandwidth, so a waiting stage waits on it.
    ``cores`` (usable) tells oversubscription (more calls than cores, waiting
    for one) from contention with other threads or processes.
    ``queued_per_cpu`` (:func:`core_wait_per_cpu`) estimates the core wait
    of stages whose own run queue was not read.
    """
    demands = [
        _own_seconds(s)
        for s in pipeline.stages
        if s.stats is not None and pool_of(pipeline, s) is None
    ]
    total = sum(d for d in demands if d is not None) / roots
    return tuple(
        _analyse(pipeline, stage, roots, total, cpu_saturated, disk_busy, cores,
                 queued_per_cpu)
        for stage in pipeline.stages
    )


def rate_at(analysis: StageAnalysis, wall: float) -> float:
    """Root elements/s a stage delivers with ``wall`` seconds of wall time per root element.

    ``parallelism / wall`` for a stage that runs beside the training loop.
    One that runs in the loop's own thread (``loop_step_s`` set: a
    DataLoader with ``num_workers=0``) takes turns with the step, so each
    root element costs its wall time plus the step's: a loader making a
    batch in 3.5 ms for a 2.5 ms step ran at 160/s, not the 285/s its own
    time allows.
    """
    if analysis.loop_step_s is not None:
        return 1.0 / (wall + analysis.loop_step_s)
    return analysis.parallelism / wall if wall > 0 else math.inf


def loop_step_per_root(pipeline: Pipeline, stage: Stage) -> float | None:
    """The step's wall time per root element when ``stage`` runs in the loop's thread, else None.

    That is a DataLoader's pool with ``num_workers=0``, whose loop was timed
    around each ``next()`` (the time between requests is then the step).
    """
    consumer = pipeline.consumer
    if stage.kind != POOL or stage.knobs.get("num_workers") != 0 or consumer is None:
        return None
    rate = consumer_rate(pipeline)
    if consumer.source != "python_next" or rate is None:
        return None
    return 1.0 / rate


def _own_seconds(stage: Stage) -> float | None:
    """The larger of the stage's wall and CPU seconds over the run, if finite."""
    stats = stage.stats
    if stats is None or not math.isfinite(stats.wall_time_s):
        return None
    cpu = stats.cpu_time_s
    return max(stats.wall_time_s, cpu if cpu is not None and math.isfinite(cpu) else 0.0)


def _analyse(
    pipeline: Pipeline,
    stage: Stage,
    roots: int,
    total: float,
    cpu_saturated: bool,
    disk_busy: bool,
    cores: float,
    queued_per_cpu: float | None,
) -> StageAnalysis:
    p = parallelism(pipeline, stage)
    own = _own_seconds(stage)
    pool = pool_of(pipeline, stage)
    if stage.stats is None or own is None:
        reason = stage.unmeasured_reason or "no processing time recorded"
        return StageAnalysis(
            stage.id, stage.kind, stage.op, None, None, None, p, None, None,
            "unmeasured", stage.source, reason, pool,
        )
    stats = stage.stats
    wall = stats.wall_time_s / roots
    cpu_s = _stage_cpu_s(stage)
    cpu = cpu_s / roots if cpu_s is not None else None
    runqueue = stats.runqueue_time_s
    estimated = False
    if runqueue is None and pool is not None:
        runqueue = _share_of_pool_runqueue(pipeline.stage(pool), stats)
    elif runqueue is None and queued_per_cpu is not None and cpu is not None:
        runqueue, estimated = cpu_s * queued_per_cpu, True
    split = split_wall(stats.wall_time_s, cpu_s, runqueue) if cpu is not None else None
    wait = 1.0 - split.computing if split is not None else None
    core = split.core if split is not None else None
    if stage.kind in PASS_THROUGH:
        resource, note = "none", ""
    elif SERVICE in stage.knobs:
        received = stats.cpu_time_s is None or not math.isfinite(stats.cpu_time_s)
        resource, note = "service", (
            f"waits for the tf.data service's workers ({stage.knobs[SERVICE]}): what they run "
            f"is not measured here" + ("; its own CPU is estimated from the bytes it received"
                                       if received else ""))
    else:
        in_pool = stage.kind == POOL or pool is not None
        crowd = _Crowd(p, cores, "workers" if in_pool else "calls in flight", estimated)
        resource, note = _resource(
            own / roots, total, cpu, wait, core, cpu_saturated, disk_busy, crowd
        )
    analysis = StageAnalysis(
        stage_id=stage.id,
        kind=stage.kind,
        op=stage.op,
        visit_ratio=stats.elements / roots,
        cpu_demand_s=cpu,
        wall_demand_s=wall,
        parallelism=p,
        max_rate=math.inf,
        wait_fraction=wait,
        resource=resource,
        source=stage.source,
        note=note,
        pool=pool,
        core_wait_fraction=core,
        loop_step_s=loop_step_per_root(pipeline, stage),
    )
    return dataclasses.replace(analysis, max_rate=rate_at(analysis, wall))


def _share_of_pool_runqueue(pool: Stage, stats: StageStats) -> float | None:
    """A pool member's run-queue wait: the pool's, shared in proportion to time off the CPU.

    The run queue is read around each whole chain a worker runs, not per
    member, so each member gets the pool's ratio of core wait to time off
    the CPU.
    """
    whole = pool.stats
    if whole is None or whole.runqueue_time_s is None or whole.cpu_time_s is None:
        return None
    cpu = stats.cpu_time_s
    if cpu is None or not math.isfinite(cpu):
        return None
    off_cpu = whole.wall_time_s - whole.cpu_time_s
    if not off_cpu > 0:
        return 0.0
    ratio = min(whole.runqueue_time_s / off_cpu, 1.0)
    return ratio * max(stats.wall_time_s - cpu, 0.0)


@dataclass(frozen=True)
class _Crowd:
    """How many calls of a stage ran at once, on how many cores, and what to call them."""

    calls: float
    cores: float
    noun: str
    estimated: bool = False

    @property
    def queue(self) -> str:
        """Where the core wait comes from."""
        return ("estimated from the run queue of the framework's threads" if self.estimated
                else "run queue")


def with_unrecorded_wall(
    analyses: Sequence[StageAnalysis], binding_stage: str, cores_busy: float
) -> tuple[StageAnalysis, ...]:
    """The binding stage's wall demand raised to what its CPU time and the run's cores imply.

    TF records a stage's processing time on the thread that runs each call;
    the part of a call handed to other threads (the ops of a ``while_loop``)
    is CPU time without wall time, so the stage's bound comes out too high.
    The stage binds, so about ``parallelism`` calls were in flight, and
    together they used no more than the ``cores_busy`` the run kept busy:
    each call took at least ``CPU x parallelism / cores_busy`` of wall time.
    With ``cores_busy`` at least the run's CPU demand times its observed rate,
    that floor never puts the stage below the rate it delivered. Calls that
    really run on several cores at once keep their recorded wall time,
    because the run then kept that many cores busy.
    """
    out = []
    for a in analyses:
        cpu, wall = a.cpu_demand_s, a.wall_demand_s
        if a.stage_id == binding_stage and cpu is not None and wall and cpu > wall:
            floor = cpu * a.parallelism / cores_busy
            if floor > wall:
                note = (
                    f"its CPU time exceeds its recorded wall time while the run kept "
                    f"{cores_busy:.2g} cores busy: part of each call ran on threads TF does "
                    f"not time, so its wall time is taken as {text.ms(floor)} per root "
                    f"element instead of {text.ms(wall)}"
                )
                a = dataclasses.replace(
                    a, wall_demand_s=floor, max_rate=rate_at(a, floor),
                    note="; ".join(n for n in (a.note, note) if n),
                )
        out.append(a)
    return tuple(out)


def with_cpu_scaled(
    analyses: Sequence[StageAnalysis], stage_ids: frozenset[str], factor: float
) -> tuple[StageAnalysis, ...]:
    """The CPU demand of the stages in ``stage_ids`` times ``factor``; wall times unchanged.

    For stages whose CPU figures, taken together, claim more than a direct
    measurement of the same work allows (see ``consumer.in_process_excess``).
    Each stage keeps the resource and the shares of waiting that its own
    figures gave it: which of them computes and which waits is still theirs
    to tell, only the total is the process's.
    """
    return tuple(
        dataclasses.replace(a, cpu_demand_s=a.cpu_demand_s * factor)
        if a.stage_id in stage_ids and a.cpu_demand_s is not None
        else a
        for a in analyses
    )


def without(analyses: Sequence[StageAnalysis], removed: frozenset[str]) -> list[StageAnalysis]:
    """The analyses once the stages in ``removed`` no longer run (a cache replays them).

    A pool whose members are removed keeps the rest of its work: its demands
    shrink by theirs and its rate rises accordingly.
    """
    out = []
    for a in analyses:
        if a.stage_id in removed:
            continue
        gone = [m for m in analyses if m.pool == a.stage_id and m.stage_id in removed]
        if gone and a.wall_demand_s is not None:
            wall = max(a.wall_demand_s - sum(m.wall_demand_s or 0.0 for m in gone), 0.0)
            cpu = a.cpu_demand_s
            if cpu is not None:
                cpu = max(cpu - sum(m.cpu_demand_s or 0.0 for m in gone), 0.0)
            a = dataclasses.replace(a, wall_demand_s=wall, cpu_demand_s=cpu,
                                    max_rate=rate_at(a, wall))
        out.append(a)
    return out


def with_work(analyses: Sequence[StageAnalysis], stage_id: str,
              seconds: float) -> list[StageAnalysis]:
    """The analyses with stage ``stage_id`` doing ``seconds`` more computing per root element
    (a sample cache's writes or reads, done by the pool whose samples it holds)."""
    out = []
    for a in analyses:
        if a.stage_id == stage_id and a.wall_demand_s is not None:
            wall = a.wall_demand_s + seconds
            cpu = a.cpu_demand_s + seconds if a.cpu_demand_s is not None else None
            a = dataclasses.replace(a, wall_demand_s=wall, cpu_demand_s=cpu,
                                    max_rate=rate_at(a, wall))
        out.append(a)
    return out


def _resource(
    own: float,
    total: float,
    cpu: float | None,
    wait: float | None,
    core: float | None,
    cpu_saturated: bool,
    disk_busy: bool,
    crowd: _Crowd,
) -> tuple[str, str]:
    """What bounds a measured stage's work, with a note when the answer needs one.

    Any kind of stage can wait: a stage's own time excludes its inputs, so
    wall time far above CPU time means its own function waits (file reads,
    remote fetches, sleeps in a ``py_function``) or waits for a core. Where
    the run-queue wait was measured it tells the two apart: a stage waiting
    mostly for a core is CPU-bound: oversubscribed with more calls than
    cores, else crowded out by other threads or processes; one that waits on
    something else is not CPU-bound, however busy the cores were.
    """
    if own <= NEGLIGIBLE_SHARE * total:
        return "none", ""
    if cpu is None:
        return "cpu", "CPU time not measured: its wall time is taken as CPU demand"
    if _waits_for_cores(core, wait):
        waits = (f"waits {core:.0%} of its time for a core ({crowd.queue}), "
                 f"{wait - core:.0%} on I/O or latency")
        if crowd.calls > crowd.cores:
            return "cpu", (f"{waits}: oversubscribed, {crowd.calls:g} {crowd.noun} on "
                           f"{crowd.cores:g} usable cores")
        return "cpu", f"{waits}: other threads or processes kept the cores busy"
    if wait is None or wait <= WAITING:
        return "cpu", ""
    if core is not None:
        for_core = f"{'about ' if crowd.estimated else ''}{core:.0%} for a core"
        return ("disk", f"waits {wait:.0%} of its time while the disk reads near its "
                f"bandwidth ({for_core})") if disk_busy else (
            "latency", f"waits {wait:.0%} of its time on I/O or latency ({for_core}), so "
            f"needs more in flight")
    if cpu_saturated:
        return "cpu", f"waits {wait:.0%} of its time, most likely for a core (CPU saturated)"
    if disk_busy:
        return "disk", f"waits {wait:.0%} of its time while the disk reads near its bandwidth"
    return "latency", f"waits {wait:.0%} of its time (I/O or latency), so needs more in flight"
