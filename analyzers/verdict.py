"""The verdict: which bound binds, what kind of bottleneck it is, and the sentence a user reads.

The binding bound comes from the model; the consumer's measured stall share
checks it. A loop that hardly waited was not held back by its input,
whatever the model says, and a loop that waited a lot with no measured
stage to blame is reported as an unknown input bottleneck, never as
"not the input pipeline".

Where the training step's bound (or the CPU bound of the cores it shares
with the pipeline, when it takes most of them) and the pipeline's lowest
bound are within :data:`NOISE` of each other, which one binds depends on
run-to-run noise:
the verdict is then uncertain (:func:`too_close_to_call`), its sentence says
so instead of giving advice, no change is recommended, and ``plumber tune``
plans none, so ``profile`` and ``tune`` tell one story whatever the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from plumber.analyzers import text
from plumber.analyzers.allocate import allocate
from plumber.analyzers.bounds import binding, next_rate, step_cores, step_fills_cores
from plumber.analyzers.results import Bound, StageAnalysis
from plumber.analyzers.stages import (
    SATURATED,
    busiest_member,
    cpu_demand,
    oversubscribed,
    pool_members,
)
from plumber.analyzers.whatif import STALLED, Scene
from plumber.records.kinds import POOL, SERVICE

#: The share of time waiting on input above which a job is input-bound
#: (the TensorBoard input-pipeline analyzer's threshold).
INPUT_BOUND = 0.2

#: Bounds closer than this factor cannot be told apart by one run's
#: measurements: repeated runs of one script differ by about 10%.
NOISE = 1.1


@dataclass(frozen=True)
class Verdict:
    """The binding bound and what follows from it."""

    bound: Bound
    kind: str
    stage_id: str | None
    input_bound: bool
    rate_if_fixed: float
    uncertain: bool = False


@dataclass(frozen=True)
class CloseCall:
    """The step's bound and the pipeline's lowest bound, too close to tell which binds."""

    consumer: Bound
    pipeline: Bound

    def sentence(self) -> str:
        """Why the verdict is uncertain, in the words profile and tune both print."""
        low, high = sorted((self.consumer.rate, self.pipeline.rate))
        step = ("the training step" if self.consumer.kind == "consumer"
                else "the training step, on the cores it shares with the pipeline,")
        return (
            f"Too close to call: {step} allows about "
            f"{text.rate(self.consumer.rate)} and {self.pipeline.name} about "
            f"{text.rate(self.pipeline.rate)}, {high / low - 1:.0%} apart, within the "
            f"run-to-run noise ({NOISE - 1:.0%}), so whether the input pipeline holds the "
            f"loop back is uncertain and plumber advises no change for it."
        )


def too_close_to_call(scene: Scene) -> CloseCall | None:
    """The step's and the pipeline's bounds when which binds is within the noise.

    The step's side is its own bound and, where the training step takes
    most of the CPU the cores share (:func:`_step_takes_most_cpu`), the CPU
    bound, which the verdict then charges to the step. None when the two
    sides are further apart, when either is missing, and when the loop's
    measured waiting already settled it (it hardly waited although the model
    put the pipeline lower, on a bound other than the cores the step shares:
    :func:`judge` takes the step).
    """
    steps = [b for b in scene.bounds
             if b.kind == "consumer" or _step_takes_most_cpu(scene, b)]
    inputs = [b for b in scene.bounds if b not in steps]
    if not steps or not inputs:
        return None
    consumer, lowest = binding(steps), binding(inputs)
    low, high = sorted((consumer.rate, lowest.rate))
    if not (low > 0 and math.isfinite(high)) or high > NOISE * low:
        return None
    settled = lowest.rate < consumer.rate and _hardly_waited(scene)
    if settled and not _cores_shared_with_step(scene, lowest):
        return None
    return CloseCall(consumer, lowest)


def _hardly_waited(scene: Scene) -> bool:
    """The loop's measured (not estimated) waiting was under :data:`STALLED` of its time."""
    stall, consumer = scene.stall_share, scene.pipeline.consumer
    measured = consumer is not None and not consumer.wait_estimated
    return measured and stall is not None and stall < STALLED


def judge(scene: Scene, warnings: list[str]) -> Verdict:
    """Pick the bottleneck; add a warning where the stall share contradicts the model.

    A loop that hardly waited overrules a model that blames the input, except
    where the binding bound is the cores the step shares with the pipeline
    (:func:`_cores_shared_with_step`): the step then runs slow for want of
    cores, not of data, so its loop need not wait.
    """
    bounds = scene.bounds
    stall = scene.stall_share
    consumer = next((b for b in bounds if b.kind == "consumer"), None)
    explained = any(b.kind != "consumer" for b in bounds)
    if not explained and (consumer is None or (stall is not None and stall > INPUT_BOUND)):
        return _unexplained(scene)
    bound = binding(bounds)
    overruled = bound is not consumer and consumer is not None and _hardly_waited(scene)
    if overruled and not _cores_shared_with_step(scene, bound):
        warnings.append(
            f"The model puts {bound.name} ({text.rate(bound.rate)}) below the training "
            f"step ({text.rate(consumer.rate)}), but the loop waited only {stall:.0%} "
            f"of its time, so the step is taken as the limit."
        )
        bound = consumer
    elif bound is consumer and stall is not None and stall > INPUT_BOUND:
        steady = scene.pipeline.consumer is not None and scene.pipeline.consumer.stall_is_steady
        causes = ("an unmeasured stage or an uneven pace the buffers do not absorb" if steady
                  else "start-up (filling buffers) or an unmeasured stage")
        window = " after start-up" if steady else ""
        warnings.append(
            f"The loop waited {stall:.0%} of its time{window} although the measured stages "
            f"should keep up with the step: {causes} may be the cause."
        )
    step_first = _step_takes_most_cpu(scene, bound)
    return Verdict(
        bound=bound,
        kind="consumer" if step_first else bound.kind,
        stage_id=None if step_first else bound.stage_id or _heaviest(scene, bound.kind),
        input_bound=bound is not consumer and not step_first,
        rate_if_fixed=(
            math.nan if bound.kind == "parallelism" and step_fills_cores(scene.limits)
            else _rate_if_fixed(bounds, bound)
        ),
        uncertain=too_close_to_call(scene) is not None,
    )


def _pipeline_cpu(scene: Scene) -> float:
    """The pipeline's CPU per root element (a pool's members counted through the pool)."""
    return sum(
        cpu_demand(a) or 0.0
        for a in scene.analyses
        if a.resource != "unmeasured" and a.pool is None
    )


def _cores_shared_with_step(scene: Scene, bound: Bound) -> bool:
    """``bound`` is the CPU bound of the cores, and the training step's CPU is part of it."""
    step = scene.limits.consumer_cpu_per_root or 0.0
    return bound.kind == "cpu" and bound.stage_id is None and step > 0


def _step_takes_most_cpu(scene: Scene, bound: Bound) -> bool:
    """The shared cores bind, and the training step uses more of them than the pipeline.

    Then the step is named as what holds the loop back: a pipeline twice as
    cheap would free less than the step takes. What the pipeline frees still
    goes to the step, so changes that make it cheaper are still recommended
    and planned (:attr:`plumber.analyzers.results.Diagnosis.step_shares_cores`).
    """
    if not _cores_shared_with_step(scene, bound):
        return False
    return (scene.limits.consumer_cpu_per_root or 0.0) > _pipeline_cpu(scene)


def _rate_if_fixed(bounds: Sequence[Bound], bound: Bound) -> float:
    """The next binding rate. The disk and the stages waiting on it are one bottleneck."""
    if bound.kind != "disk":
        return next_rate(bounds, bound)
    return min((b.rate for b in bounds if b.kind != "disk"), default=math.nan)


def _unexplained(scene: Scene) -> Verdict:
    """No measured stage bounds the pipeline, and the loop waited on it (or was not observed).

    It counts as input-bound only when the loop's waiting says so.
    """
    stall = scene.stall_share
    detail = "no stage of the pipeline was measured"
    if stall is not None:
        detail = f"the loop waited {stall:.0%} of its time, but {detail}"
    bound = Bound("input pipeline", "unknown", scene.observed_rate, detail)
    consumer = scene.limits.consumer_rate
    return Verdict(
        bound, "unknown", None, stall is not None,
        consumer if consumer is not None else math.nan,
    )


def _heaviest(scene: Scene, kind: str) -> str | None:
    """The stage that loads a binding resource most: CPU demand for cpu, wall for disk."""
    def load(a: StageAnalysis) -> float:
        if kind == "cpu":
            return cpu_demand(a) or 0.0
        reads = a.kind == "source" or a.resource in ("latency", "disk")
        reads = reads and a.pool is None
        return (a.wall_demand_s or 0.0) if reads else 0.0

    if kind not in ("cpu", "disk", "network"):
        return None
    candidates = [
        a for a in scene.analyses if a.resource != "unmeasured" and a.pool is None and load(a) > 0
    ]
    return max(candidates, key=load).stage_id if candidates else None


def summarise(scene: Scene, verdict: Verdict) -> str:
    """One or two sentences: where the bottleneck is, what bounds it, the rate if fixed."""
    stall = scene.stall_share
    observed = f"observed {text.rate(scene.observed_rate)}"
    fixed = text.rate(verdict.rate_if_fixed)
    close = too_close_to_call(scene) if verdict.uncertain else None
    if close is not None:
        waited = f" The loop waited for data {stall:.0%} of its time." if stall is not None else ""
        return close.sentence() + waited
    if verdict.kind == "unknown":
        if stall is None:
            return "Nothing bounds this pipeline: no stage was measured and no loop observed."
        return (
            f"The loop waited for data {stall:.0%} of its time, but no stage of the "
            f"pipeline was measured, so which one holds it back is unknown."
        )
    if not verdict.input_bound:
        waited = (
            f"the loop waited for data {stall:.0%} of its time"
            if stall is not None
            else "the time it waited for data was not measured"
        )
        if verdict.bound.kind == "cpu":
            return (
                f"The training step and the input pipeline share the "
                f"{scene.limits.cores:g} usable cores, and the step uses most of them: it "
                f"takes {text.ms(scene.limits.consumer_cpu_per_root or 0.0)} of CPU per root "
                f"element, the pipeline {text.ms(_pipeline_cpu(scene))}, which together allow "
                f"{text.rate(verdict.bound.rate)}, and {waited}. More parallelism in the "
                f"pipeline cannot help, but CPU taken off it goes to the step, so a cheaper "
                f"pipeline (a cache) raises the rate. With CPU to spare, the next limit "
                f"would allow about {fixed}."
            )
        return (
            f"The input pipeline is not the bottleneck: the training step limits the rate "
            f"to {text.rate(verdict.bound.rate)} and {waited}. The pipeline alone could "
            f"deliver about {fixed}."
        )
    analysis = next((a for a in scene.analyses if a.stage_id == verdict.stage_id), None)
    stage = scene.pipeline.stage(verdict.stage_id) if verdict.stage_id is not None else None
    who = text.where(stage) if stage is not None else "The pipeline"
    inside = _inside_pool(scene, verdict.stage_id)
    if verdict.kind == "cpu":
        return _cpu_summary(scene, analysis, who, f"about {fixed} ({observed})") + inside
    if verdict.kind == "disk":
        disk = next((b for b in scene.bounds if b.name == "disk"), verdict.bound)
        why = f"is bound by disk read bandwidth ({disk.detail})"
        then = f"Reading less (a cache, smaller records) would allow about {fixed} ({observed})."
    elif verdict.kind == "network":
        net = next((b for b in scene.bounds if b.name == "network"), verdict.bound)
        why = f"is bound by network bandwidth ({net.detail})"
        then = (
            f"More requests in flight would not help; fetching less (a cache, smaller "
            f"objects) would allow about {fixed} ({observed})."
        )
    elif verdict.kind == "latency":
        waits = analysis.wait_fraction if analysis is not None else None
        share = f"{waits:.0%} of its time" if waits is not None else "most of its time"
        requests = scene.network
        if requests is not None and requests.requests > 0:
            why = (
                f"waits {share} on network requests ({text.ms(requests.latency_p50_s)} "
                f"median each: latency-bound, not bandwidth-bound), so it needs more requests "
                f"in flight, even beyond the cores"
            )
        else:
            why = (
                f"waits {share} (latency), so it needs more calls in flight, even beyond "
                f"the cores"
            )
        then = f"With enough in flight the pipeline should reach about {fixed} ({observed})."
        cap = scene.limits.in_flight_cap
        if cap is not None:
            then += f" The server refused requests beyond {cap} in flight, so no more than that."
    elif verdict.kind == "service":
        address = stage.knobs.get(SERVICE) if stage is not None else None
        why = (f"waits for the tf.data service at {address}, whose workers delivered about "
               f"{text.rate(verdict.bound.rate)}")
        then = (f"More workers there (or fewer stages sent to them) would allow about {fixed} "
                f"({observed}); what the workers run is not measured here, so how many is "
                f"not predicted.")
    else:  # parallelism: a CPU-bound stage with cores left idle
        why, then = _parallelism_summary(scene, analysis, f"about {fixed} ({observed})")
    return f"{who} is the bottleneck: it {why}. {then}{inside}"


def _parallelism_summary(
    scene: Scene, analysis: StageAnalysis | None, reach: str
) -> tuple[str, str]:
    """Why a CPU-bound stage with cores to spare binds, and what more calls would give."""
    cores = scene.limits.cores
    p = analysis.parallelism if analysis is not None else 1.0
    if analysis is not None and analysis.loop_step_s is not None:
        why = (
            f"makes each batch in the training loop's own thread (num_workers=0), taking "
            f"turns with the step ({text.ms(analysis.wall_demand_s or 0.0)} and "
            f"{text.ms(analysis.loop_step_s)} per root element)"
        )
    else:
        why = f"is CPU-bound at parallelism {p:g} while {cores - p:g} of {cores:g} cores idle"
    if step_fills_cores(scene.limits):
        busy = step_cores(scene.limits) or 0.0
        return why, (
            f"The step itself keeps {busy:.1f} of the {cores:g} usable cores busy while it "
            f"runs, so work moved beside it would take cores from its threads: the model "
            f"cannot predict what that gives, and plumber proposes no more parallelism here."
        )
    return why, f"With more parallelism the pipeline should reach {reach}."


def _inside_pool(scene: Scene, stage_id: str | None) -> str:
    """For a worker pool, which of the stages its workers run takes most of their time."""
    members = pool_members(scene.analyses, stage_id)
    top = busiest_member(members)
    if top is None:
        return ""
    total = sum(a.wall_demand_s or 0.0 for a in members)
    pool = next((a for a in scene.analyses if a.stage_id == stage_id), None)
    crowded = pool is not None and oversubscribed(pool, scene.limits.cores)
    waiting = "mostly waiting for a core" if crowded else "mostly waiting"
    cpu, wall = top.cpu_demand_s, top.wall_demand_s or 0.0
    spent = (
        waiting if cpu is not None and wall > 0 and cpu < 0.5 * wall
        else "mostly computing" if cpu is not None else "CPU not measured"
    )
    return (
        f" Inside its workers, {top.stage_id} ({top.op}) takes "
        f"{wall / total:.0%} of the time ({spent})."
    )


def _cpu_summary(scene: Scene, heaviest: StageAnalysis | None, who: str, outcome: str) -> str:
    """The pipeline's CPU demand, the stage that takes most of it, and the cores measured busy."""
    total = _pipeline_cpu(scene)
    step = scene.limits.consumer_cpu_per_root or 0.0
    shared = f", and the training step {text.ms(step)} on the same cores" if step > 0 else ""
    first = (
        f"The pipeline is CPU-bound: its stages need {text.ms(total)} of CPU per root "
        f"element{shared}; {_cores_busy(scene)}"
    )
    if heaviest is not None and total > 0:
        first += f"; the heaviest stage is {who} with {(cpu_demand(heaviest) or 0.0) / total:.0%}"
    return f"{first}. Less work per element or more cores would allow {outcome}." + "".join(
        _crowded(scene, a)
        for a in scene.analyses
        if a.pool is None and oversubscribed(a, scene.limits.cores)
    )


def _cores_busy(scene: Scene) -> str:
    """What the cores did, checked against the measurement: the measurement wins."""
    cores, share = scene.limits.cores, scene.busy_share
    if share is None:
        return f"the model has them keep all {cores:g} usable cores busy (not measured)"
    if share >= SATURATED:
        return f"the run kept {share * cores:.1f} of {cores:g} usable cores busy"
    return (
        f"but the run kept only {share * cores:.1f} of {cores:g} usable cores busy, so the "
        f"cores were not all in use: the measured rate is below the model's, and the rates "
        f"it predicts are upper bounds"
    )


def _crowded(scene: Scene, a: StageAnalysis) -> str:
    """The sentence for a stage that waited mostly for a core (a CPU verdict's footnote)."""
    stage = scene.pipeline.stage(a.stage_id)
    what = "workers" if a.kind == POOL else "calls in flight"
    fewer = allocate(scene).parallelism.get(a.stage_id)
    advice = (
        f"{fewer} would do the same work without queueing"
        if fewer is not None and fewer < a.parallelism
        else "fewer would lose nothing"
    )
    return (
        f" {text.where(stage)} is oversubscribed: its {a.parallelism:g} {what} waited "
        f"{a.core_wait_fraction or 0.0:.0%} of their time for one of the "
        f"{scene.limits.cores:g} usable cores, not for I/O, so more {what} cannot help; "
        f"{advice}."
    )
