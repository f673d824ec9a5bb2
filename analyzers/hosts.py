"""Several hosts of one data-parallel job, compared: which host is slowest, and why.

Data-parallel training runs one input pipeline per host. In synchronous
training every step ends with an all-reduce of the gradients, so every
host waits for the slowest one: a single straggler holds the whole job at
its pace. Given one profile per host, this names the slowest host of each
pipeline and what differs on it (:mod:`plumber.analyzers.hostdiff`).

Which host is slowest: the one with the lowest observed rate, when the
rates differ by more than :data:`SAME_PACE` (hosts profiled separately, or
training asynchronously). Hosts in lockstep deliver at one rate; the
straggler then is the host that waited longest for its own input (the
others wait for it in the all-reduce, which counts as their step time),
when its stall share stands out by :data:`STALL_MARGIN`.

Only profiles of one job are compared: the same framework and the same
pipelines, stage for stage (ids, kinds and the source lines that built
them). Anything else raises :class:`DifferentJobsError`; comparing two
different pipelines would explain nothing.

Pure: Profiles in, a :class:`HostComparison` out.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from statistics import median

from plumber.analyzers import text
from plumber.analyzers.diagnose import diagnose
from plumber.analyzers.hostdiff import Difference, machine_differences, stage_differences
from plumber.analyzers.results import Diagnosis
from plumber.analyzers.stages import pool_members
from plumber.records.profile import Pipeline, Profile

#: Observed rates within this share of each other are one pace (hosts in lockstep).
SAME_PACE = 0.05

#: In lockstep, a host whose stall share exceeds the others' median by this holds them back.
STALL_MARGIN = 0.05

#: Up to this many hosts, the summary lists every host's rate; beyond, the others' median.
LISTED_RATES = 4


class DifferentJobsError(ValueError):
    """Profiles that are not of one job (another framework or other pipelines)."""


@dataclass(frozen=True)
class HostPipeline:
    """One host's run of a pipeline: the record and its diagnosis."""

    host: str
    pipeline: Pipeline
    diagnosis: Diagnosis


@dataclass(frozen=True)
class PipelineComparison:
    """One pipeline of the job across its hosts.

    ``runs`` are in the comparison's host order. ``slowest`` indexes the
    slowest host; ``basis`` says how it was found: ``rate`` (the lowest
    observed rate), ``wait`` (hosts in lockstep; it waited longest for
    input) or ``even`` (in lockstep with no host waiting more: the lowest
    rate, within the noise). ``lag`` is how far its rate is below the
    others' median (0.25: 25% slower). ``differences`` explain it: the
    slowest host's bottleneck stage first (with the stages a bottleneck
    worker pool runs), then by how much worse.
    """

    pipeline_id: str
    runs: tuple[HostPipeline, ...]
    slowest: int
    basis: str
    lag: float
    differences: tuple[Difference, ...]
    summary: str

    @property
    def slowest_host(self) -> str:
        return self.runs[self.slowest].host


@dataclass(frozen=True)
class HostComparison:
    """A data-parallel job's profiles, one per host, and each pipeline compared."""

    hosts: tuple[str, ...]
    profiles: tuple[Profile, ...]
    pipelines: tuple[PipelineComparison, ...]


def compare_hosts(hosts: Sequence[str], profiles: Sequence[Profile]) -> HostComparison:
    """Compare the profiles of one job's hosts, named by ``hosts`` in the same order.

    Raises ValueError for fewer than two profiles or repeated names, and
    :class:`DifferentJobsError` for profiles of different jobs.
    """
    if len(hosts) != len(profiles):
        raise ValueError(f"{len(hosts)} host names for {len(profiles)} profiles")
    if len(profiles) < 2:
        raise ValueError("comparing hosts needs the profiles of at least two")
    if len(set(hosts)) != len(hosts):
        raise ValueError(f"host names repeat: {', '.join(hosts)}")
    check_one_job(hosts, profiles)
    pipelines = tuple(
        _compare_pipeline(hosts, profiles, index) for index in range(len(profiles[0].pipelines))
    )
    return HostComparison(tuple(hosts), tuple(profiles), pipelines)


def check_one_job(hosts: Sequence[str], profiles: Sequence[Profile]) -> None:
    """Raise :class:`DifferentJobsError` unless every profile ran the first one's pipelines."""
    first, reference = hosts[0], profiles[0]
    for host, profile in zip(hosts, profiles, strict=True):
        if not profile.pipelines:
            raise DifferentJobsError(
                f"no input pipeline was observed on {host}: there is nothing to compare")
        reason = _job_difference(reference, profile)
        if reason is not None:
            raise DifferentJobsError(
                f"{host} and {first} are not profiles of one job ({reason}); plumber compares "
                f"the hosts of one data-parallel job only")


def names_from_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Host names for profiles read from ``paths``: their file names without ``.json``.

    Where two files share a name (``runs/host0/profile.json``,
    ``runs/host1/profile.json``), each is named by its folder below the one
    all of them share (``host0``, ``host1``), or by its path there when
    the folders do not tell them apart.
    """
    pure = [PurePath(os.path.abspath(p)) for p in paths]
    stems = [p.stem for p in pure]
    if len(set(stems)) == len(stems):
        return tuple(stems)
    common = PurePath(os.path.commonpath([str(p.parent) for p in pure]))
    below = [p.relative_to(common) for p in pure]
    folders = [str(b.parent) for b in below]
    if "." not in folders and len(set(folders)) == len(folders):
        return tuple(folders)
    return tuple(str(b) for b in below)


def _job_difference(reference: Profile, profile: Profile) -> str | None:
    """Why ``profile`` is not a run of ``reference``'s job, or None when it is."""
    if profile.run.framework != reference.run.framework:
        return (f"framework {profile.run.framework or 'unknown'} against "
                f"{reference.run.framework or 'unknown'}")
    ids, reference_ids = _ids(profile.pipelines), _ids(reference.pipelines)
    if ids != reference_ids:
        return f"pipelines {', '.join(ids)} against {', '.join(reference_ids)}"
    for theirs, ours in zip(profile.pipelines, reference.pipelines, strict=True):
        shape, reference_shape = _shape(theirs), _shape(ours)
        if shape != reference_shape:
            changed = next((f"{a[0]} {a[1]} at {a[2]}:{a[3]} against "
                            f"{b[0]} {b[1]} at {b[2]}:{b[3]}"
                            for a, b in zip(shape, reference_shape, strict=False) if a != b),
                           f"{len(shape)} stages against {len(reference_shape)}")
            return f"pipeline {theirs.id} has other stages: {changed}"
    return None


def _ids(pipelines: Sequence[Pipeline]) -> list[str]:
    return [p.id for p in pipelines]


def _shape(pipeline: Pipeline) -> list[tuple[str, str, str, int | None]]:
    """Each stage's id, kind and source line (file name only: hosts install code anywhere)."""
    return [
        (s.id, s.kind, PurePath(s.source.file).name if s.source else "?",
         s.source.line if s.source else None)
        for s in pipeline.stages
    ]


def _compare_pipeline(
    hosts: Sequence[str], profiles: Sequence[Profile], index: int
) -> PipelineComparison:
    pipelines = [p.pipelines[index] for p in profiles]
    diagnoses = [diagnose(profile, pipeline) for profile, pipeline in zip(profiles, pipelines,
                                                                           strict=True)]
    runs = tuple(HostPipeline(h, p, d) for h, p, d in zip(hosts, pipelines, diagnoses,
                                                           strict=True))
    slowest, basis = _slowest(diagnoses)
    lag = _lag(diagnoses, slowest)
    bottleneck = _bottleneck_stages(diagnoses[slowest])
    differences = sorted(
        [*stage_differences(hosts, pipelines, diagnoses, slowest),
         *machine_differences(hosts, profiles, slowest)],
        key=lambda d: (d.stage_id not in bottleneck, -d.worse_by),
    )
    comparison = PipelineComparison(pipelines[0].id, runs, slowest, basis, lag,
                                    tuple(differences), "")
    return dataclasses.replace(comparison, summary=_summary(comparison))


def _bottleneck_stages(diagnosis: Diagnosis) -> set[str]:
    """The bottleneck's stage and, for a worker pool, the stages its workers run."""
    stage_id = diagnosis.bottleneck_stage or diagnosis.bottleneck.stage_id
    if stage_id is None:
        return set()
    return {stage_id} | {a.stage_id for a in pool_members(diagnosis.stages, stage_id)}


def _rate(diagnosis: Diagnosis) -> float:
    rate = diagnosis.observed_rate
    return rate if math.isfinite(rate) and rate > 0 else math.nan


def _slowest(diagnoses: Sequence[Diagnosis]) -> tuple[int, str]:
    """The index of the slowest host and how it was told (see :class:`PipelineComparison`)."""
    rates = [_rate(d) for d in diagnoses]
    known = [i for i, r in enumerate(rates) if not math.isnan(r)]
    lowest = min(known, key=lambda i: rates[i], default=0)
    if known and max(rates[i] for i in known) > (1.0 + SAME_PACE) * rates[lowest]:
        return lowest, "rate"
    stalled = _most_stalled(diagnoses)
    return (stalled, "wait") if stalled is not None else (lowest, "even")


def _most_stalled(diagnoses: Sequence[Diagnosis]) -> int | None:
    """The host that waited for input clearly longer than the others, if one did."""
    stalls = [d.stall_share for d in diagnoses]
    known = [i for i, s in enumerate(stalls) if s is not None]
    if len(known) < 2:
        return None
    most = max(known, key=lambda i: stalls[i])
    others = median(stalls[i] for i in known if i != most)
    return most if stalls[most] >= others + STALL_MARGIN else None


def _lag(diagnoses: Sequence[Diagnosis], slowest: int) -> float:
    """How far the slowest host's rate is below the others' median (NaN when unknown)."""
    mine = _rate(diagnoses[slowest])
    others = [r for i, d in enumerate(diagnoses) if i != slowest and not math.isnan(r := _rate(d))]
    if math.isnan(mine) or not others:
        return math.nan
    return max(1.0 - mine / median(others), 0.0)


def _rates(comparison: PipelineComparison) -> str:
    """``host0 24.1/s, host1 12.0/s``; for many hosts the slowest's and the others' median."""
    runs = comparison.runs
    if len(runs) <= LISTED_RATES:
        return ", ".join(f"{r.host} {text.rate(r.diagnosis.observed_rate)}" for r in runs)
    slowest = runs[comparison.slowest]
    others = [_rate(r.diagnosis) for i, r in enumerate(runs) if i != comparison.slowest]
    known = [r for r in others if not math.isnan(r)]
    typical = text.rate(median(known)) if known else text.rate(math.nan)
    return (f"{slowest.host} {text.rate(slowest.diagnosis.observed_rate)}, the other "
            f"{len(others)} hosts' median {typical}")


def _summary(comparison: PipelineComparison) -> str:
    """Which host is slowest, why it sets the job's pace, and what differs on it."""
    run = comparison.runs[comparison.slowest]
    diagnosis = run.diagnosis
    rates = _rates(comparison)
    if comparison.basis == "rate":
        others = ([r.host for r in comparison.runs if r is not run][0]
                  if len(comparison.runs) == 2 else "the others' median")
        lead = (f"{run.host} is the slowest host ({comparison.lag:.0%} below {others}; "
                f"{rates}). In synchronous training it holds every host at its pace.")
    elif comparison.basis == "wait":
        lead = (f"The hosts ran at one pace ({rates}), as synchronous training makes them; "
                f"{run.host} waited longest for its input ({diagnosis.stall_share:.0%} of its "
                f"loop), so its input pipeline holds the others back.")
    else:
        lead = (f"The hosts ran at one pace ({rates}) and none waited for its input more "
                f"than the others: no host is a straggler beyond the noise; {run.host} is "
                f"the slowest by a margin within it.")
    if diagnosis.step_shares_cores:
        cause = (" On it the training step uses most of the cores it shares with the input "
                 "pipeline.")
    elif not diagnosis.input_bound:
        cause = " On it the training step, not the input pipeline, is the limit."
    else:
        stage_id = diagnosis.bottleneck_stage or diagnosis.bottleneck.stage_id
        stage = next((s for s in run.pipeline.stages if s.id == stage_id), None)
        where = text.where(stage) if stage is not None else diagnosis.bottleneck.name
        cause = f" Its bottleneck is the {diagnosis.bottleneck_kind}-bound {where}."
    if not comparison.differences:
        return (lead + cause + " Nothing recorded differs enough to explain it "
                "(machine, stage times, parallelism or the training step).")
    return lead + cause
