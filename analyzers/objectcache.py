"""A cache of the objects a pipeline fetches over the network, and what it would give.

A pipeline that reads the same objects from object storage every epoch pays
every round trip every epoch. Keeping the fetched bytes (in memory, or in
files on local disk) pays them once. This cache sits in the storage client,
under the pipeline, so it is allowed where a stage cache is not: after a
shuffle of the keys, inside a map that also draws random augmentations, on an
endless ``repeat()``. It holds bytes, not elements, so every stage still
does its CPU work; what goes is the stages' wait on the network (their wall
time beyond their CPU time) and the network bound.

How often the run read each object comes from the requests themselves
(``object_reads / objects_read`` of :class:`plumber.records.profile.NetworkRequests`),
not from the pipeline's structure, so it holds for an endless stream too.
The cache is proposed when the run read its objects at least
:data:`MIN_PASSES` times, only one pipeline made the requests, a stage waits
and its wait is mostly the requests' (their time is at least
:data:`NETWORK_SHARE` of it), and the objects fit the memory budget (else
the disk budget, where replaying them costs disk reads). A DataLoader's
workers are separate processes, each with its own client: its samples are
cached by index instead (:mod:`plumber.analyzers.cache`), so no object cache
is proposed for a worker pool. Like a stage cache, the prediction averages
over the run's passes: the first still fetches everything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from plumber.analyzers import text
from plumber.analyzers.bounds import compute_bounds, rate_of
from plumber.analyzers.cache import MIN_PASSES, average_rate
from plumber.analyzers.results import StageAnalysis, WhatIf
from plumber.analyzers.stages import rate_at
from plumber.analyzers.whatif import WORTH_LISTING, Scene

KNOB = "object_cache"

#: The requests' time must be at least this share of the fetching stage's wait
#: for the wait to count as the network's (a stage that waits on a disk while
#: the run reads a manifest over HTTP is not fetching objects).
NETWORK_SHARE = 0.25


def object_cache_what_if(scene: Scene) -> WhatIf | None:
    """The object cache for ``scene``'s pipeline, ``None`` when it does not apply.

    Returned with ``feasible=False`` and the reason when it would help but a
    rule stands in the way (too few passes, too big).
    """
    network = scene.network
    fetching = _fetching_stage(scene.analyses)
    if (
        network is None
        or network.objects_read <= 0
        or fetching is None
        or scene.limits.network_bytes_per_root is None
        or scene.pipeline.is_loader
        or not _waits_on_requests(scene, fetching)
    ):
        return None
    where = placement(scene)
    steady = steady_rate(scene, scene.analyses, where)
    if not steady > WORTH_LISTING * scene.predicted_rate:
        return None
    reads = reads_per_object(scene)
    problem = None
    if reads < MIN_PASSES:
        problem = (
            f"the run read each object {reads:.1f} time(s): a cache pays from the second "
            f"read on"
        )
    elif where is None:
        problem = (
            f"the {text.size(network.object_bytes)} of objects fit neither "
            f"{text.size(scene.memory_budget)} of memory nor the disk budget"
        )
    predicted = average_rate(reads, scene.predicted_rate, steady) if problem is None else steady
    medium = "in memory" if where != "disk" else f"in files under {scene.cache_dir}"
    kept_for = (
        "during the run" if where != "disk"
        else "while kept (the folder keeps them across runs: empty it when the data changes)"
    )
    reason = (
        f"Not proposed: {problem}." if problem is not None else
        f"The run read each of its {network.objects_read:,} objects {reads:.1f} times; kept "
        f"{medium} after the first read ({text.size(network.object_bytes)}), later reads skip "
        f"the round trip ({text.ms(network.latency_p50_s)} median): {text.rate(steady)} once "
        f"every object is held, {text.rate(predicted)} averaged over the run's reads. "
        f"Assumes the objects do not change {kept_for}."
    )
    return WhatIf(
        stage_id=fetching.stage_id,
        knob=KNOB,
        value=where or "memory",
        change=f"cache the objects {fetching.stage_id} fetches "
        f"{'in memory' if where != 'disk' else 'on disk'}",
        predicted_rate=predicted,
        speedup=scene.speedup(predicted),
        reason=reason,
        feasible=problem is None,
        steady_rate=steady,
    )


def reads_per_object(scene: Scene) -> float:
    """How many times the run read each object it fetched (0 without object reads)."""
    network = scene.network
    if network is None or network.objects_read <= 0:
        return 0.0
    return network.object_reads / network.objects_read


def placement(scene: Scene) -> str | None:
    """``memory`` when the objects fit the memory budget, else ``disk`` if they fit there."""
    size = scene.network.object_bytes if scene.network is not None else 0
    if size <= scene.memory_budget:
        return "memory"
    if scene.disk_budget is not None and size <= scene.disk_budget:
        return "disk"
    return None


def steady_rate(scene: Scene, analyses: Sequence[StageAnalysis], where: str | None) -> float:
    """The rate once every object is cached: no network waits, no network bound.

    ``analyses`` may carry new parallelism (a plan's); objects replayed from
    files are read back from disk every pass, which the disk bound counts.
    """
    limits = dataclasses.replace(scene.limits, network_bps=None, network_bytes_per_root=None)
    per_root = scene.limits.network_bytes_per_root
    if where == "disk" and per_root:
        limits = dataclasses.replace(
            limits,
            disk_bytes_per_root=per_root + (limits.disk_bytes_per_root or 0.0),
            disk_basis="cached objects read back",
        )
    return rate_of(compute_bounds(without_network_waits(analyses), limits))


def without_network_waits(analyses: Sequence[StageAnalysis]) -> list[StageAnalysis]:
    """The analyses once the stages that wait no longer wait: their wall time is their CPU time.

    The wait is taken to be the network's: this is only used for a pipeline
    whose requests are the reason it waits.
    """
    out = []
    for a in analyses:
        if not _waits(a):
            out.append(a)
            continue
        wall = a.cpu_demand_s
        out.append(dataclasses.replace(
            a,
            wall_demand_s=wall,
            max_rate=rate_at(a, wall),
            wait_fraction=0.0,
            resource="cpu",
        ))
    return out


def client_code(location: str) -> tuple[str, str]:
    """The user's S3 client as written, and wrapped so it keeps its objects at ``location``."""
    return (
        'client = boto3.client("s3", ...)',
        f'client = plumber.objectcache.cache_object_reads(boto3.client("s3", ...), '
        f"location={location})",
    )


def _waits(a: StageAnalysis) -> bool:
    """A stage that waits (latency-bound) and whose wait is known."""
    return a.resource == "latency" and a.cpu_demand_s is not None and bool(a.wall_demand_s)


def _fetching_stage(analyses: Sequence[StageAnalysis]) -> StageAnalysis | None:
    """The stage that waits longest per root element (the one making the requests)."""
    waiting = [a for a in analyses if _waits(a) and a.source is not None]
    return max(waiting, key=lambda a: a.wall_demand_s - a.cpu_demand_s, default=None)


def _waits_on_requests(scene: Scene, fetching: StageAnalysis) -> bool:
    """Whether the requests' time is at least :data:`NETWORK_SHARE` of the stage's wait.

    Both are sums over calls: the stage's wall time beyond its CPU time, and
    the requests' count times their mean latency.
    """
    network, stats = scene.network, scene.pipeline.stage(fetching.stage_id).stats
    if network is None or stats is None or stats.cpu_time_s is None:
        return False
    waited = stats.wall_time_s - stats.cpu_time_s
    requested = network.requests * network.latency_mean_s
    return waited <= 0 or (math.isfinite(requested) and requested >= NETWORK_SHARE * waited)
