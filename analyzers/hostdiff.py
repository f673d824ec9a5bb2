"""What differs between the slowest host of a job and the others, and could explain it.

A straggler is slower for a reason that shows in its profile: a smaller
machine (fewer usable cores, less memory, a slower disk or network) or a
busier one (other processes using its cores), a
stage that takes longer per element or ran with less parallelism, or a
slower training step. Each quantity is compared between the slowest host
and the median of the other hosts (the other host, when there are two),
and kept when the slowest host is worse by at least :data:`DIFFERENCE` (an
amount) or :data:`SHARE_DIFFERENCE` (a share of time): differences the
other way round do not explain why it is slow.

Pure: Profiles and their Diagnoses in, :class:`Difference` values out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import fmean, median

from plumber.analyzers import network, text
from plumber.analyzers.observed import machine_busy_share
from plumber.analyzers.results import Diagnosis, StageAnalysis
from plumber.analyzers.stages import PASS_THROUGH
from plumber.records.profile import Pipeline, Profile, Stage

#: An amount (time, cores, bandwidth) this much worse (a ratio above 1) explains.
DIFFERENCE = 0.2

#: A share of time (waiting, not on a CPU) this many points higher explains.
SHARE_DIFFERENCE = 0.15

#: A stage under this share of the slowest host's summed stage time is left
#: out: its timings are mostly noise and cannot explain the host's pace.
MINOR_SHARE = 0.05


@dataclass(frozen=True)
class Difference:
    """One quantity that is worse on the slowest host than on the others.

    ``subject`` is ``machine``, ``training step`` or a stage as a user finds
    it (``map-0 (map at train.py:12)``, with ``stage_id`` set). ``unit`` is
    how to read the values: ``s`` (seconds), ``B``, ``B/s``, ``cores``,
    ``count`` or ``share`` (0..1). ``values`` holds one value per host, in
    the comparison's host order (``None`` where not measured); ``slowest``
    is the slowest host's and ``others`` the others' median. ``worse_by``
    is how much worse the slowest host is: the ratio minus one for an
    amount, the difference for a share.
    """

    subject: str
    stage_id: str | None
    quantity: str
    unit: str
    values: tuple[float | None, ...]
    slowest: float
    others: float
    worse_by: float
    sentence: str


@dataclass(frozen=True)
class _Quantity:
    """A quantity to compare: its name, unit, and whether a higher value is worse."""

    name: str
    unit: str
    higher_is_worse: bool


_USABLE_CORES = _Quantity("usable cores", "cores", higher_is_worse=False)
_LOGICAL_CORES = _Quantity("logical cores", "cores", higher_is_worse=False)
_MEMORY = _Quantity("available memory", "B", higher_is_worse=False)
_DISK = _Quantity("disk read bandwidth", "B/s", higher_is_worse=False)
_NETWORK = _Quantity("network bandwidth (probed)", "B/s", higher_is_worse=False)
_OTHERS_CPU = _Quantity("cores busy with other processes", "share", higher_is_worse=True)
_SERVICE = _Quantity("service time per element", "s", higher_is_worse=True)
_CPU = _Quantity("CPU time per element", "s", higher_is_worse=True)
_PARALLELISM = _Quantity("parallelism", "count", higher_is_worse=False)
_WAITING = _Quantity("share of time not on a CPU", "share", higher_is_worse=True)
_STEP = _Quantity("time per step", "s", higher_is_worse=True)
_QUANTITIES = {q.name: q for q in (_SERVICE, _CPU, _PARALLELISM, _WAITING)}


def word(value: float, unit: str) -> str:
    """A compared value as a person reads it: ``12.3 ms``, ``45.1 MB/s``, ``4 cores``, ``62%``."""
    if unit == "s":
        return text.ms(value)
    if unit == "B":
        return text.size(value)
    if unit == "B/s":
        return f"{text.size(value)}/s"
    if unit == "cores":
        return f"{value:g} core" if value == 1 else f"{value:g} cores"
    if unit == "share":
        return f"{value:.0%}"
    return f"{value:.3g}"


def machine_differences(
    hosts: Sequence[str], profiles: Sequence[Profile], slowest: int
) -> list[Difference]:
    """How the slowest host's machine is smaller, or busier with other work, than the others'."""
    readings: tuple[tuple[_Quantity, Callable[[Profile], float | None]], ...] = (
        (_USABLE_CORES, lambda p: p.machine.cores_usable),
        (_LOGICAL_CORES, lambda p: p.machine.cores_logical),
        (_MEMORY, lambda p: p.machine.memory_available_bytes),
        (_DISK, lambda p: p.machine.disk_read_bps),
        (_NETWORK, lambda p: network.available_bps(p.network)),
        (_OTHERS_CPU, other_processes_share),
    )
    found = (
        _difference("machine", None, quantity, [read(p) for p in profiles], hosts, slowest)
        for quantity, read in readings
    )
    return [d for d in found if d is not None]


def other_processes_share(profile: Profile) -> float | None:
    """The share of the machine's cores other processes kept busy while the run was sampled.

    The machine's busy share less the run's own (its process and worker
    children); None without both series. A neighbour's work slows every
    stage on a shared host without any setting of the job having changed.
    """
    machine = machine_busy_share(profile)
    own = [v for v in profile.resources.process_cpu_percent if math.isfinite(v)]
    logical = profile.machine.cores_logical
    if machine is None or not own or logical <= 0:
        return None
    return max(machine - fmean(own) / (100.0 * logical), 0.0)


@dataclass(frozen=True)
class Reading:
    """One quantity of a stage read on every host: its name, unit and values in host order."""

    quantity: str
    unit: str
    values: tuple[float | None, ...]


def stage_readings(
    stage_id: str, pipelines: Sequence[Pipeline], diagnoses: Sequence[Diagnosis]
) -> tuple[Reading, ...]:
    """A stage's service and CPU time per element, parallelism and waiting share, per host."""
    stages = [_stage_in(p, stage_id) for p in pipelines]
    analyses = [next((a for a in d.stages if a.stage_id == stage_id), None) for d in diagnoses]
    values: tuple[tuple[_Quantity, list[float | None]], ...] = (
        (_SERVICE, [_per_element(s, cpu=False) for s in stages]),
        (_CPU, [_per_element(s, cpu=True) for s in stages]),
        (_PARALLELISM, [_analysis_value(a, "parallelism") for a in analyses]),
        (_WAITING, [_analysis_value(a, "wait_fraction") for a in analyses]),
    )
    return tuple(Reading(q.name, q.unit, tuple(v)) for q, v in values)


def stage_differences(
    hosts: Sequence[str],
    pipelines: Sequence[Pipeline],
    diagnoses: Sequence[Diagnosis],
    slowest: int,
) -> list[Difference]:
    """How the slowest host's stages and training step are slower than the others'.

    Stages are matched by id (the hosts run one job, so one pipeline); a
    pass-through stage, an unmeasured one and one too small to matter on
    the slowest host are left out.
    """
    mine = {a.stage_id: a for a in diagnoses[slowest].stages}
    found: list[Difference | None] = []
    for stage in pipelines[slowest].stages:
        if not _matters(stage.id, mine):
            continue
        found += [_difference(text.where(stage), stage.id, _QUANTITIES[r.quantity], r.values,
                              hosts, slowest)
                  for r in stage_readings(stage.id, pipelines, diagnoses)]
    steps = [_step_time(p) for p in pipelines]
    found.append(_difference("training step", None, _STEP, steps, hosts, slowest))
    return [d for d in found if d is not None]


def _matters(stage_id: str, analyses: dict[str, StageAnalysis]) -> bool:
    """Whether a stage does enough of the slowest host's work for its timings to count."""
    analysis = analyses.get(stage_id)
    if analysis is None or analysis.kind in PASS_THROUGH or analysis.wall_demand_s is None:
        return False
    total = sum(a.wall_demand_s for a in analyses.values()
                if a.wall_demand_s is not None and a.pool is None)
    return total > 0 and analysis.wall_demand_s >= MINOR_SHARE * total


def _stage_in(pipeline: Pipeline, stage_id: str) -> Stage | None:
    return next((s for s in pipeline.stages if s.id == stage_id), None)


def _per_element(stage: Stage | None, cpu: bool) -> float | None:
    """Seconds of wall (or CPU) time per element the stage produced, summed over its threads."""
    if stage is None or stage.stats is None or stage.stats.elements <= 0:
        return None
    seconds = stage.stats.cpu_time_s if cpu else stage.stats.wall_time_s
    return seconds / stage.stats.elements if seconds is not None else None


def _analysis_value(analysis: StageAnalysis | None, name: str) -> float | None:
    return getattr(analysis, name) if analysis is not None else None


def _step_time(pipeline: Pipeline) -> float | None:
    """Seconds the training loop spent per step outside waiting for data."""
    consumer = pipeline.consumer
    if consumer is None or consumer.steps <= 0:
        return None
    return consumer.step_s / consumer.steps


def _difference(
    subject: str,
    stage_id: str | None,
    quantity: _Quantity,
    values: Sequence[float | None],
    hosts: Sequence[str],
    slowest: int,
) -> Difference | None:
    """The difference in ``quantity``, or None when it does not make the slowest host worse."""
    known = [float(v) if v is not None and math.isfinite(v) else None for v in values]
    mine = known[slowest]
    others = [v for i, v in enumerate(known) if i != slowest and v is not None]
    if mine is None or not others:
        return None
    reference = median(others)
    worse_by = _worse_by(mine, reference, quantity)
    threshold = SHARE_DIFFERENCE if quantity.unit == "share" else DIFFERENCE
    if not worse_by >= threshold:
        return None
    other_hosts = [h for i, h in enumerate(hosts) if i != slowest]
    against = other_hosts[0] if len(other_hosts) == 1 else "the other hosts (median)"
    sentence = (f"{subject}: {quantity.name} {word(mine, quantity.unit)} on {hosts[slowest]} "
                f"against {word(reference, quantity.unit)} on {against}")
    return Difference(subject, stage_id, quantity.name, quantity.unit, tuple(known), mine,
                      reference, worse_by, sentence)


def _worse_by(mine: float, reference: float, quantity: _Quantity) -> float:
    """How much worse ``mine`` is than ``reference``: a ratio minus one, or a share's points."""
    if quantity.unit == "share":
        return mine - reference if quantity.higher_is_worse else reference - mine
    high, low = (mine, reference) if quantity.higher_is_worse else (reference, mine)
    if low <= 0:
        return math.inf if high > 0 else 0.0
    return high / low - 1.0
