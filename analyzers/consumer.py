"""CPU over the steady window: the training step's own part, and the cores the run kept busy.

When the training step runs on the CPU (no accelerator, or CPU-side work per
step: a Keras step on CPU, receiving and unpickling batches from DataLoader
workers, ``collate`` with ``num_workers=0``), it competes with the pipeline
for the same cores. The hooks record the CPU time of the consumer's process
over the steady window (``ConsumerStats.cpu_s``); the part the pipeline's
stages that ran in that process account for is taken off, and the rest, per
root element, is the consumer's CPU demand, which the CPU bound charges next
to the pipeline's (``cores / (pipeline CPU + consumer CPU per root element)``).
The step cannot use more than every core for as long as it lasts, so the
charge is at most ``cores x step time``: what the process used beyond that
is the pipeline's own work on threads its stages' timers do not see (torch
ops running on intra-op threads with ``num_workers=0``, for instance), not
the step's.

The same window says how many cores the run kept busy while it iterated
(:func:`steady_busy_share`), the measurement a CPU verdict is checked against:
a whole-run average would count imports, data generation and model building.
"""

from __future__ import annotations

import math

from plumber.analyzers.topology import pool_of
from plumber.records.kinds import POOL
from plumber.records.profile import Pipeline, Stage

#: The most CPU the in-process stages may claim, as a multiple of what their
#: process used: a short steady window counts a few elements made before it
#: began (the buffers' fill), so the process's figure per step runs a little
#: low, and claims above this are capped at it.
EXCESS_TOLERANCE = 1.25


def consumer_cpu_per_root(pipeline: Pipeline, roots: int, cores: float) -> float | None:
    """CPU-seconds the consumer spends per root element, beyond the pipeline's own stages.

    At most ``cores`` times the step's own time per step. None when the
    consumer's CPU was not measured, or when a stage that ran in the
    consumer's process has no CPU time of its own to take off (its share
    could not be told from the training step's).
    """
    consumer = pipeline.consumer
    if (
        consumer is None
        or consumer.cpu_s is None
        or not consumer.steady_steps
        or not math.isfinite(consumer.cpu_s)
        or roots <= 0
    ):
        return None
    stages = in_process_cpu(pipeline)
    if stages is None:
        return None
    beyond = max(consumer.cpu_s / consumer.steady_steps - stages / roots, 0.0)
    step_time = consumer.step_s / consumer.steps if consumer.steps > 0 else 0.0
    return min(beyond, cores * step_time)


def in_process_excess(pipeline: Pipeline, roots: int) -> float | None:
    """How many times the CPU the consumer's process used its in-process stages claim.

    Those stages ran in that process, so together they cannot have used more
    CPU per root element than the process did over the steady window. Their
    figures come from separate measurements (tf.data's from short prefix
    runs after the script, whose read-ahead and neighbours make them noisy),
    so they can claim more: above :data:`EXCESS_TOLERANCE` times the
    process's own, the process's measurement is the one to believe, and
    their figures are scaled down by :func:`in_process_scale`. None when
    either was not measured or the stages claim no more than that.
    """
    consumer = pipeline.consumer
    stages = in_process_cpu(pipeline)
    if (
        consumer is None
        or consumer.cpu_s is None
        or not math.isfinite(consumer.cpu_s)
        or not consumer.steady_steps
        or not consumer.cpu_s > 0
        or stages is None
        or roots <= 0
    ):
        return None
    excess = (stages / roots) / (consumer.cpu_s / consumer.steady_steps)
    return excess if excess > EXCESS_TOLERANCE else None


def in_process_scale(excess: float | None) -> float:
    """The factor on the in-process stages' CPU that caps it at the tolerance (1 without excess).

    Capped rather than brought down to the process's figure, so that a
    claim just above the tolerance changes the model just as little.
    """
    return 1.0 if excess is None else EXCESS_TOLERANCE / excess


def in_process_ids(pipeline: Pipeline) -> frozenset[str]:
    """The stages that ran in the consumer's process: all but a DataLoader's workers'."""
    ids = set()
    for stage in pipeline.stages:
        pool = pool_of(pipeline, stage)
        if not _in_workers(pipeline.stage(pool) if pool is not None else stage):
            ids.add(stage.id)
    return frozenset(ids)


def in_process_cpu(pipeline: Pipeline) -> float | None:
    """CPU-seconds the stages that ran in the consumer's process used over the run.

    A DataLoader's worker pool with ``num_workers > 0`` ran in other
    processes, so neither it nor its members count; with ``num_workers=0``
    the pool (the total of its members) ran in the main process. None when
    such a stage did work but its CPU time was not measured.
    """
    total = 0.0
    in_process = in_process_ids(pipeline)
    for stage in pipeline.stages:
        counted_by_pool = pool_of(pipeline, stage) is not None
        if stage.stats is None or stage.id not in in_process or counted_by_pool:
            continue
        cpu = stage.stats.cpu_time_s
        if cpu is None or not math.isfinite(cpu):
            if stage.stats.wall_time_s > 0:
                return None
            continue
        total += cpu
    return total


def steady_busy_share(pipeline: Pipeline, cores: float, roots: int) -> float | None:
    """Share (0..1) of the usable cores the run kept busy over the steady window.

    The consumer's process CPU over the window, plus what worker processes
    spent on the window's steps (their stages report run totals, so their
    CPU per root element times the window's steps). None when the window
    was not measured.
    """
    consumer = pipeline.consumer
    if (
        consumer is None
        or consumer.cpu_s is None
        or not consumer.steady_steps
        or not consumer.steady_s
        or cores <= 0
        or roots <= 0
    ):
        return None
    workers = sum(
        s.stats.cpu_time_s or 0.0
        for s in pipeline.stages
        if _in_workers(s) and s.stats is not None
    )
    busy = consumer.cpu_s + workers / roots * consumer.steady_steps
    return busy / consumer.steady_s / cores


def _in_workers(stage: Stage) -> bool:
    workers = stage.knobs.get("num_workers")
    return stage.kind == POOL and isinstance(workers, int) and workers > 0
