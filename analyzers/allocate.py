"""Joint parallelism allocation across stages (README.md, ``tune``: rates made equal).

What-ifs change one stage at a time; a plan changes them together. A stage
delivers ``p / W`` root elements per second with ``p`` calls in flight and
``W`` seconds of wall time per root element, so each tunable CPU-bound stage
gets the fewest calls that keep up with the rate the rest of the pipeline
allows: ``p = ceil(target x W)``, at most one per core (more would not run at
once). That equalises the stage rates, as water-filling would, in one step.
The cores are budgeted by the CPU bound (``cores / total CPU per root
element``), which the target includes, not by the sum of the calls: a stage
that needs a tenth of a core still holds one call, and counting that call as
a whole core starved the heavy stage (two stages on two cores each kept one
call). Latency-bound stages wait rather than compute, so they get
concurrency from Little's law, ``target rate x wall time per root element``,
which may exceed the core count. An oversubscribed stage (one that waited
mostly for a core, see :func:`plumber.analyzers.stages.oversubscribed`) gets
fewer calls: Little's law on its wall time without the core wait, which
goes once the calls no longer outnumber the cores. A request takes longer with more in flight
once the server serves them as fast as it can, so the wall time is that of
requests at the new concurrency (the network probe's loaded latency, see
:func:`plumber.analyzers.network.latency_in_flight`): Little's law is solved
by raising the calls until they cover the latency they bring.

Little's law holds for a steady stream; a
pass over N objects fetched with p in flight takes whole round trips,
``ceil(N / p)`` of them, so a fetching stage outside a worker pool gets the
fewest calls whose whole rounds take no longer than Little's law's fraction
of them (``ceil(N / floor(N / p))``), and never more than N: more than a
pass's requests cannot be in flight within it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from plumber.analyzers import network, text
from plumber.analyzers.bounds import compute_bounds, rate_of, step_fills_cores
from plumber.analyzers.results import StageAnalysis, WhatIf
from plumber.analyzers.stages import oversubscribed, rate_at, without_core_wait
from plumber.analyzers.topology import parallelism_owner
from plumber.analyzers.whatif import Scene
from plumber.records.kinds import AUTOTUNE, POOL
from plumber.records.profile import NetworkRequests

#: Never put more calls than this in flight at one stage.
MAX_IN_FLIGHT = 64

#: Headroom over Little's law, so a latency stage is not the bottleneck again.
LATENCY_HEADROOM = 1.25

#: Oversubscribed stages keep no call for less than this fraction of one.
SPARE_CALL = 0.1


@dataclass(frozen=True)
class Allocation:
    """New parallelism per stage id, why, and the model's rate with all of it.

    ``threads`` is how many threads the pipeline's thread pool needs so that
    the waiting stages really have their calls in flight (tf.data runs a
    stage's calls on a pool sized to the core count by default), or None
    when no waiting stage gets more calls than it had: a pool sized for calls
    that are not added only adds threads competing for the cores. ``walls``
    is the wall time per root element, at the new parallelism, of stages
    whose requests then take longer, or that no longer wait for a core
    (see :func:`with_parallelism`).
    """

    parallelism: dict[str, int]
    reasons: dict[str, str]
    predicted_rate: float
    threads: int | None = None
    walls: dict[str, float] = dataclasses.field(default_factory=dict)

    def applied_to(self, analyses: Sequence[StageAnalysis]) -> list[StageAnalysis]:
        """``analyses`` with this allocation's parallelism and the wall times it brings."""
        return with_parallelism(analyses, self.parallelism, self.walls)


def allocate(scene: Scene) -> Allocation:
    """Choose the parallelism of every tunable stage of ``scene`` together.

    Computing stages get no more calls while the training step fills the
    cores (:func:`~plumber.analyzers.bounds.step_fills_cores`); oversubscribed
    ones may still get fewer, and waiting ones more, since neither takes
    cores from the step.
    """
    analyses = list(scene.analyses)
    tunable = {a.stage_id for a in analyses if _tunable(scene, a)}
    chosen: dict[str, int] = {}
    reasons: dict[str, str] = {}
    waiting: list[int] = []
    loaded_walls: dict[str, float] = {}
    cpu_ids = [a.stage_id for a in analyses if a.stage_id in tunable and a.resource == "cpu"]
    if cpu_ids:
        latency_ids = {a.stage_id for a in analyses
                       if a.stage_id in tunable and a.resource == "latency"}
        target = _rate_unbounded(scene, analyses, set(cpu_ids) | latency_ids)
        crowded = {a.stage_id: a for a in analyses
                   if a.stage_id in cpu_ids and oversubscribed(a, scene.limits.cores)}
        keep_up = [stage_id for stage_id in cpu_ids
                   if stage_id not in crowded and not step_fills_cores(scene.limits)]
        for stage_id, p in _keep_up(scene, analyses, keep_up, target).items():
            chosen[stage_id] = p
            reasons[stage_id] = (
                f"CPU-bound: {p} call{'s' if p > 1 else ''} keep up with "
                f"{_rate_text(target)}, the most the rest of the pipeline and "
                f"{scene.limits.cores:g} usable cores allow"
            )
        for stage_id, a in crowded.items():
            p, wall = _uncrowded(a, target)
            if p < int(a.parallelism):
                chosen[stage_id] = p
                loaded_walls[stage_id] = wall
                reasons[stage_id] = _uncrowded_reason(scene, a, p, target)
        analyses = with_parallelism(analyses, chosen, loaded_walls)
    for a in analyses:
        if a.stage_id not in tunable or a.resource != "latency" or not a.wall_demand_s:
            continue
        target = _rate_unbounded(scene, analyses, {a.stage_id})
        if not math.isfinite(target):
            target = a.max_rate * MAX_IN_FLIGHT if a.max_rate else 0.0
        p = _littles_law(scene, a, target)
        if a.pool is None and a.kind != POOL:
            p = whole_rounds(p, _objects_per_pass(scene))
        p = min(MAX_IN_FLIGHT, max(int(a.parallelism), p))
        cap = scene.limits.in_flight_cap
        refused = cap is not None and p > cap
        p = min(p, cap) if refused else p
        chosen[a.stage_id] = p
        if p > _current(scene, a.stage_id):
            waiting.append(p)
        wall = _wall_with(scene, a, p)
        if wall > a.wall_demand_s:
            loaded_walls[a.stage_id] = wall
        reasons[a.stage_id] = (
            f"waits on I/O or latency: {p} calls in flight sustain about "
            f"{p / wall:.1f}/s (Little's law: rate x wait), beyond the core count "
            f"where that is what helps"
        ) + (_loaded_text(scene.network, a, p) if wall > a.wall_demand_s else "") + (
            f"; capped at {cap}: the server refused requests beyond that" if refused else ""
        )
    analyses = with_parallelism(analyses, chosen, loaded_walls)
    changed = {k: v for k, v in chosen.items() if v != _current(scene, k)}
    predicted = rate_of(compute_bounds(analyses, scene.limits))
    threads = sum(waiting) + int(scene.limits.cores) if waiting else None
    return Allocation(changed, {k: reasons[k] for k in changed}, predicted, threads,
                      {k: loaded_walls[k] for k in changed if k in loaded_walls})


def fewer_calls_what_ifs(scene: Scene) -> list[WhatIf]:
    """The allocation's fewer calls at each oversubscribed stage, as what-ifs.

    The model counts CPU time, not the cost of switching between more
    runnable processes than cores, so fewer calls predict about the rate as
    run: the what-if shows the change and that nothing is lost by it.
    """
    allocation = allocate(scene)
    what_ifs = []
    for a in scene.analyses:
        p = allocation.parallelism.get(a.stage_id)
        if p is None or p >= a.parallelism or not oversubscribed(a, scene.limits.cores):
            continue
        stage = scene.pipeline.stage(a.stage_id)
        changed = with_parallelism(scene.analyses, {a.stage_id: p},
                                   {a.stage_id: without_core_wait(a) or 0.0})
        predicted = rate_of(compute_bounds(changed, scene.limits))
        reason = allocation.reasons[a.stage_id]
        what_ifs.append(WhatIf(
            stage_id=a.stage_id,
            knob="parallelism",
            value=str(p),
            change=text.parallelism_change(stage, a.parallelism, p),
            predicted_rate=predicted,
            speedup=scene.speedup(predicted),
            reason=f"{reason[0].upper()}{reason[1:]}.",
        ))
    return what_ifs


def _uncrowded(a: StageAnalysis, target: float) -> tuple[int, float]:
    """Calls for an oversubscribed stage to deliver ``target``, and its wall time with them.

    Without the core wait each call takes its CPU time plus any real waiting;
    Little's law on that gives the calls (at least one, never more than it had).
    A fraction of a call below :data:`SPARE_CALL` is not worth one more: a
    call busy that little of the time adds a process queueing for a core.
    """
    wall = without_core_wait(a) or 0.0
    if not math.isfinite(target) or wall <= 0:
        return int(a.parallelism), a.wall_demand_s or 0.0
    p = min(int(a.parallelism), max(1, math.ceil(target * wall - SPARE_CALL)))
    return p, wall


def _uncrowded_reason(scene: Scene, a: StageAnalysis, p: int, target: float) -> str:
    """Why an oversubscribed stage gets fewer calls."""
    what = "workers" if a.kind == POOL else "calls in flight"
    return (
        f"oversubscribed: {a.parallelism:g} {what} on {scene.limits.cores:g} usable cores "
        f"waited {a.core_wait_fraction or 0.0:.0%} of their time for a core, not for I/O; "
        f"{p} keep up with {_rate_text(target)}, the most the rest of the pipeline and the "
        f"cores allow, without queueing for them"
    )


def _littles_law(scene: Scene, a: StageAnalysis, target: float) -> int:
    """Calls in flight at a waiting stage for ``target`` root elements per second.

    More calls bring more latency (:func:`_wall_with`), so the calls are
    raised until they cover it; the latency stops rising at the probe's
    level, so this ends.
    """
    p = math.ceil(LATENCY_HEADROOM * target * (a.wall_demand_s or 0.0))
    while p <= MAX_IN_FLIGHT:
        needed = math.ceil(LATENCY_HEADROOM * target * _wall_with(scene, a, p))
        if needed <= p:
            break
        p = needed
    return p


def _wall_with(scene: Scene, a: StageAnalysis, p: int) -> float:
    """The stage's wall time per root element with ``p`` calls in flight.

    Each request's latency beyond the run's adds to it once per request the
    stage makes per root element (only known for a lone pipeline).
    """
    wall = a.wall_demand_s or 0.0
    requests = scene.network
    per_root = network.requests_per_root(requests, scene.limits.network_bytes_per_root)
    if requests is None or per_root <= 0:
        return wall
    extra = network.latency_in_flight(requests, a.parallelism, p) - requests.latency_mean_s
    return wall + per_root * extra


def _loaded_text(requests: NetworkRequests | None, a: StageAnalysis, p: int) -> str:
    """The loaded latency the calls were sized for."""
    if requests is None:
        return ""
    return (
        f"; with {p} in flight a request takes about "
        f"{text.ms(network.latency_in_flight(requests, a.parallelism, p))} "
        f"(the run's {text.ms(requests.latency_mean_s)}, the probe's "
        f"{text.ms(requests.probe_loaded_latency_s)} with "
        f"{requests.probe_loaded_in_flight} in flight)"
    )


def whole_rounds(p: int, requests_per_pass: int | None) -> int:
    """The fewest calls in flight, at least ``p``, that fetch a pass in whole round trips.

    With ``p`` in flight a pass of N requests takes ``ceil(N / p)`` round
    trips where Little's law counted ``N / p``: the last one is partly empty.
    ``ceil(N / floor(N / p))`` calls take at most ``N / p`` whole ones; a
    pass never has more than N requests to put in flight.
    """
    if not requests_per_pass or p <= 0:
        return p
    if p >= requests_per_pass:
        return requests_per_pass
    return math.ceil(requests_per_pass / (requests_per_pass // p))


def _objects_per_pass(scene: Scene) -> int | None:
    """Objects one pass fetches: the distinct objects a run that read to its end fetched.

    None when unknown: no object reads, or a run stopped before its data ended.
    """
    network, run = scene.network, scene.run
    if network is None or network.objects_read <= 0:
        return None
    if run.bounded_by is not None or run.interrupted or run.exit_status != 0:
        return None
    return network.objects_read


def _tunable(scene: Scene, analysis: StageAnalysis) -> bool:
    """A written stage whose own parallelism knob the user set, or one that waits.

    Stages left to AUTOTUNE (or parallelised by TF itself) stay with TF's
    tuner when they compute: it already spreads them over the cores. A
    waiting stage is different: AUTOTUNE caps parallelism at the core count.
    """
    stage = scene.pipeline.stage(analysis.stage_id)
    if parallelism_owner(scene.pipeline, stage) is not stage or stage.source is None:
        return False
    if analysis.wall_demand_s is None or analysis.wall_demand_s <= 0:
        return False
    if analysis.resource == "latency":
        return True
    autotuned = (
        stage.knobs.get("parallelism") == AUTOTUNE or stage.rewrite == "map_parallelization"
    )
    return analysis.resource == "cpu" and not autotuned


def _keep_up(
    scene: Scene, analyses: Sequence[StageAnalysis], stage_ids: Sequence[str], target: float
) -> dict[str, int]:
    """The fewest calls (one to a core) with which each stage delivers ``target``."""
    cores = max(int(scene.limits.cores), 1)
    walls = {a.stage_id: a.wall_demand_s or 0.0 for a in analyses}
    if not math.isfinite(target):
        return {stage_id: cores for stage_id in stage_ids}
    # The tolerance keeps float error (100/s x 30 ms = 3.0000000004) from adding a call.
    return {
        stage_id: min(cores, max(1, math.ceil(target * walls[stage_id] * (1 - 1e-9))))
        for stage_id in stage_ids
    }


def _rate_text(rate: float) -> str:
    return f"{rate:.1f}/s" if math.isfinite(rate) else "any rate"


def with_parallelism(
    analyses: Sequence[StageAnalysis],
    parallelism: dict[str, int],
    walls: dict[str, float] | None = None,
) -> list[StageAnalysis]:
    """Analyses with new parallelism: a stage's rate scales as ``p / W``.

    ``walls`` gives the wall time per root element of stages whose calls
    take longer at the new parallelism (requests that wait their turn).
    """
    out = []
    for a in analyses:
        p = parallelism.get(a.stage_id)
        if p is None or not a.wall_demand_s:
            out.append(a)
            continue
        wall = (walls or {}).get(a.stage_id, a.wall_demand_s)
        changed = dataclasses.replace(a, parallelism=float(p), wall_demand_s=wall)
        if p != a.parallelism:
            changed = dataclasses.replace(changed, loop_step_s=None)
        out.append(dataclasses.replace(changed, max_rate=rate_at(changed, wall)))
    return out


def _rate_unbounded(
    scene: Scene, analyses: Sequence[StageAnalysis], stage_ids: set[str]
) -> float:
    """The pipeline's rate if the stages in ``stage_ids`` had calls to spare.

    Their own bounds go; their CPU demand stays in the CPU bound.
    """
    rest = [dataclasses.replace(a, max_rate=math.inf) if a.stage_id in stage_ids else a
            for a in analyses]
    return rate_of(compute_bounds(rest, scene.limits))


def _current(scene: Scene, stage_id: str) -> int:
    for a in scene.analyses:
        if a.stage_id == stage_id:
            return int(a.parallelism)
    return 1
