"""Upper bounds on a pipeline's rate, from each resource and each stage.

Stages that run inside a worker pool are covered by the pool's bound (their
demands summed), so they give no bound of their own.

Every bound is in root elements per second. Resources: CPU
(``cores / CPU demand per root element``, the training step's own CPU
included when it runs on the same cores), disk (``read bandwidth / bytes
read per root element``) and the consumer (``steps / step time``). Stages:
``parallelism / wall demand``, the most a stage delivers with that many
calls in flight. The pipeline cannot run faster than the smallest bound;
that one is the bottleneck. What-ifs recompute the bounds with changed
stage analyses, so the same function answers "as run" and "what if".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from plumber.analyzers import text
from plumber.analyzers.results import Bound, StageAnalysis
from plumber.analyzers.stages import cpu_demand

#: Stage resources that give the stage a bound of its own (not pass-through, measured).
STAGE_RESOURCES = frozenset({"cpu", "latency", "disk", "service"})

#: A bound this many times another is "clearly above" it; below that they are
#: too close to tell apart with these measurements.
CLEARLY_ABOVE = 1.1

#: A training step that keeps at least this share of the usable cores busy
#: while it runs leaves none for computing beside it.
STEP_FILLS_CORES = 0.75

#: Below this share of the loop's time in the step, the process's CPU beyond
#: the stages is mostly not the step's (the hooks, the sampler's thread), so
#: it cannot say how many cores the step keeps busy.
STEP_SHARE_READABLE = 0.2


@dataclass(frozen=True)
class Limits:
    """The capacities the bounds divide: cores, disk, network, and the consumer's own rate.

    ``disk_bytes_per_root`` is ``None`` when no reads are attributable (or a
    what-if removed them); ``disk_basis`` says how it was obtained. The
    network's bound needs its probed bandwidth and the bytes fetched per
    root element. ``in_flight_cap`` is the most requests the server took at
    once before refusing one (None when it never refused).
    ``consumer_cpu_per_root`` is the CPU the training step itself takes from
    the same cores per root element (None when not measured);
    ``step_share`` the share of the loop's time it spent in the step, not
    waiting for data (None when the loop was not observed). ``link_bps`` is the
    network's rate to hosts that could run the pipeline's work, as the user
    gave it (None when not given): only the offload what-if uses it.
    """

    cores: float
    disk_read_bps: float | None = None
    disk_bytes_per_root: float | None = None
    disk_basis: str = ""
    consumer_rate: float | None = None
    network_bps: float | None = None
    network_bytes_per_root: float | None = None
    in_flight_cap: int | None = None
    consumer_cpu_per_root: float | None = None
    step_share: float | None = None
    link_bps: float | None = None


def step_cores(limits: Limits) -> float | None:
    """Cores the training step keeps busy while it runs: its CPU per root element x its rate.

    None where either was not measured, or where the step takes too little of
    the loop's time (:data:`STEP_SHARE_READABLE`) for the CPU to be its own.
    """
    cpu, rate, share = limits.consumer_cpu_per_root, limits.consumer_rate, limits.step_share
    if cpu is None or rate is None or not math.isfinite(rate):
        return None
    if share is None or share < STEP_SHARE_READABLE:
        return None
    return cpu * rate


def step_fills_cores(limits: Limits) -> bool:
    """Whether the step computes on (nearly) every usable core at once while it runs.

    Then more calls computing beside it do not just add their CPU to the
    shared bound: they preempt the step's threads, each of which the others
    wait for. On 2 cores a torch step on 2 threads ran 0.6x as fast with 2
    loader workers as with its batches made between steps, where the CPU
    bound promised 1.45x; the model has no figure for that, so it predicts
    no such change.
    """
    busy = step_cores(limits)
    return busy is not None and busy >= STEP_FILLS_CORES * limits.cores


def compute_bounds(analyses: Sequence[StageAnalysis], limits: Limits) -> tuple[Bound, ...]:
    """Resource bounds first, then stage bounds, then the consumer's.

    That order settles exact ties: a saturated resource explains a tie with
    a stage better than the stage does, and the pipeline is blamed before
    the consumer only when it is strictly slower.
    """
    bounds: list[Bound] = []
    analyses = [a for a in analyses if a.pool is None]
    demands = [cpu_demand(a) for a in analyses if a.resource != "unmeasured"]
    demand = sum(d for d in demands if d is not None)
    step = limits.consumer_cpu_per_root or 0.0
    cpu_rate = limits.cores / (demand + step) if demand > 0 else math.inf
    if math.isfinite(cpu_rate):
        shared = (
            f" ({text.ms(demand)} pipeline + {text.ms(step)} training step)" if step > 0 else ""
        )
        bounds.append(
            Bound("CPU", "cpu", cpu_rate,
                  f"{limits.cores:g} usable cores / {text.ms(demand + step)} of CPU per root "
                  f"element{shared}")
        )
    bounds.extend(b for b in (_disk_bound(limits), _network_bound(limits)) if b is not None)
    for a in analyses:
        if a.resource in STAGE_RESOURCES and a.max_rate is not None and math.isfinite(a.max_rate):
            bounds.append(_stage_bound(a, cpu_rate, limits.cores))
    if limits.consumer_rate is not None:
        bounds.append(
            Bound("consumer", "consumer", limits.consumer_rate,
                  "the training step alone: steps / time spent stepping")
        )
    return tuple(bounds)


def _disk_bound(limits: Limits) -> Bound | None:
    return _bandwidth_bound("disk", limits.disk_read_bps, "cold read bandwidth",
                            limits.disk_bytes_per_root, f"read per root element "
                            f"({limits.disk_basis})")


def _network_bound(limits: Limits) -> Bound | None:
    return _bandwidth_bound("network", limits.network_bps, "available bandwidth (probed)",
                            limits.network_bytes_per_root, "fetched per root element")


def _bandwidth_bound(
    name: str, bandwidth: float | None, what: str, per_root: float | None, per: str
) -> Bound | None:
    """``bandwidth / bytes per root element``; None unless both were measured and are positive."""
    if bandwidth is None or not bandwidth > 0 or per_root is None or not per_root > 0:
        return None
    return Bound(name, name, bandwidth / per_root,
                 f"{text.size(bandwidth)}/s {what} / {text.size(per_root)} {per}")


def _stage_bound(a: StageAnalysis, cpu_rate: float, cores: float) -> Bound:
    """A stage's bound; a CPU stage is held back by parallelism only while cores are free."""
    kind = a.resource
    if kind == "cpu" and cpu_rate > CLEARLY_ABOVE * a.max_rate and a.parallelism < int(cores):
        kind = "parallelism"
    wall = a.wall_demand_s or 0.0
    detail = f"parallelism {a.parallelism:g} / {text.ms(wall)} of wall time per root element"
    if kind == "service":
        detail = f"1 / {text.ms(wall)} waiting for the tf.data service per root element"
    elif a.loop_step_s is not None:
        detail = (
            f"made in the training loop's own thread (num_workers=0), taking turns with "
            f"the step: 1 / ({text.ms(wall)} + {text.ms(a.loop_step_s)} of training step) "
            f"per root element"
        )
    return Bound(a.stage_id, kind, a.max_rate, detail, a.stage_id)


def binding(bounds: Sequence[Bound]) -> Bound:
    """The smallest bound (the first of equals, see :func:`compute_bounds`)."""
    return min(bounds, key=lambda b: b.rate)


def rate_of(bounds: Sequence[Bound]) -> float:
    """The predicted rate: the smallest bound, unbounded when there is none."""
    return min((b.rate for b in bounds), default=math.inf)


def next_rate(bounds: Sequence[Bound], removed: Bound) -> float:
    """The rate once ``removed`` no longer binds: the smallest other bound (NaN if none)."""
    return min((b.rate for b in bounds if b is not removed), default=math.nan)
