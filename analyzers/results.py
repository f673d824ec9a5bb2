"""Result types of the analysis: what analyzers produce and renderers read.

All rates are in root elements per second (one root element is one item the
consumer receives, usually a batch). These are plain immutable values; the
renderers read them and nothing else from the analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plumber.records.profile import SourceLocation

#: Kinds a bottleneck can have. ``cpu``: computation bound by cores;
#: ``disk``: bound by storage read bandwidth; ``network``: bound by network
#: bandwidth; ``latency``: a stage that waits (wall time far above CPU time)
#: and needs more requests in flight; ``parallelism``: a CPU-bound stage held
#: back by too little parallelism while cores are idle; ``memory``: a buffer
#: or cache that does not fit; ``consumer``: the training step itself, so the
#: input pipeline is not the problem; ``unknown``: the consumer waited on
#: input but no measured stage explains it; ``service``: the elements a
#: tf.data service's workers send (what they run is not measured here).
BOTTLENECK_KINDS = (
    "cpu", "disk", "network", "latency", "parallelism", "memory", "consumer", "unknown",
    "service",
)


@dataclass(frozen=True)
class StageAnalysis:
    """The model's view of one stage.

    ``visit_ratio``: elements this stage produces per root element.
    ``cpu_demand_s`` / ``wall_demand_s``: seconds of CPU / wall time the
    stage spends per root element (``None`` where unmeasured).
    ``max_rate``: root elements/s the stage can deliver at its current
    parallelism. ``wait_fraction``: share of the stage's wall time not spent
    on CPU (high means it waits on I/O or latency). ``resource``: what the
    stage's work is bound by (``cpu``, ``disk``, ``network``, ``latency``,
    ``service`` for a read from a tf.data service, ``none`` for pass-through
    stages, ``unmeasured``). ``pool`` is the id of
    the worker pool the stage runs in, one after its siblings (a torch
    DataLoader's): the pool's own analysis carries their summed demand, so
    bounds are taken from the pool and the members only break it down.
    ``core_wait_fraction``: the share of the wall time the stage was runnable
    but waiting for a core (the scheduler's run queue), where measured; the
    rest of ``wait_fraction`` beyond it is waiting for I/O or latency.
    ``loop_step_s``: where the stage runs in the training loop's own thread
    (a DataLoader with ``num_workers=0``), the training step's wall time per
    root element that it takes turns with; None where it runs beside the loop.
    """

    stage_id: str
    kind: str
    op: str
    visit_ratio: float | None
    cpu_demand_s: float | None
    wall_demand_s: float | None
    parallelism: float
    max_rate: float | None
    wait_fraction: float | None
    resource: str
    source: SourceLocation | None = None
    note: str = ""
    pool: str | None = None
    core_wait_fraction: float | None = None
    loop_step_s: float | None = None


@dataclass(frozen=True)
class Bound:
    """An upper bound on the pipeline's rate from one resource or stage."""

    name: str
    kind: str
    rate: float
    detail: str
    stage_id: str | None = None


@dataclass(frozen=True)
class WhatIf:
    """A predicted outcome of one change.

    ``change`` is a human sentence ("parallelism 1 -> 2 at map (train.py:12)");
    ``knob`` is machine-readable (``parallelism``, ``cache``, ``prefetch``);
    ``value`` the new setting; ``predicted_rate`` the model's rate with the
    change; ``speedup`` its ratio to the observed rate. ``feasible`` is False
    for a change the model rules out (a cache after a random stage, or one
    too big for memory): it is listed so the reader learns why, with
    ``reason`` starting "Not proposed", and never becomes a recommendation.
    A cache's ``predicted_rate`` is the average over as many passes as the
    run made (the first pass still fills it); ``steady_rate`` is its rate
    once full; ``first_pass_rate`` the rate of the pass that fills it (as
    run, slowed by a sample cache's writes).
    """

    stage_id: str | None
    knob: str
    value: str
    change: str
    predicted_rate: float
    speedup: float
    reason: str
    feasible: bool = True
    steady_rate: float | None = None
    first_pass_rate: float | None = None


@dataclass(frozen=True)
class Recommendation:
    """A change worth making, tied to the user's source line.

    ``sketch`` is code that makes the change where it takes more than the
    one-line edit ``old`` -> ``new`` (empty when that says it all).
    """

    title: str
    stage_id: str | None
    source: SourceLocation | None
    old: str
    new: str
    predicted_rate: float
    speedup: float
    reason: str
    sketch: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """The analysis of one pipeline.

    ``observed_rate``: root elements/s the consumer actually got, over the
    steady window where it was recorded (after each iterator's first step;
    ``startup_s`` is the rest of the iteration), else over the whole iteration.
    ``predicted_rate``: the model's rate for the pipeline as it ran (the
    minimum bound), checked against ``observed_rate``. ``bottleneck`` is the
    binding bound; ``bottleneck_kind`` one of :data:`BOTTLENECK_KINDS`.
    ``input_bound`` is False when the consumer is the limit.
    ``stall_share`` is the share of the consumer's time spent waiting on data.
    ``rate_if_fixed`` is the predicted rate once the bottleneck is removed
    (the next binding bound; NaN where the model cannot predict it).
    ``uncertain``: the training step's bound and the pipeline's lowest are
    within the run-to-run noise, so whether the
    input pipeline holds the loop back is not known (no change is advised).
    ``past_startup`` is False when the iterators never got past their
    start-up (their steady windows hold no step): the observed rate is then
    all start-up, and the model's rate, which is for the steady state, has
    nothing to be checked against.
    """

    pipeline_id: str
    observed_rate: float
    predicted_rate: float
    bottleneck: Bound
    bottleneck_kind: str
    bottleneck_stage: str | None
    input_bound: bool
    stall_share: float | None
    rate_if_fixed: float
    summary: str
    stages: tuple[StageAnalysis, ...]
    bounds: tuple[Bound, ...]
    what_ifs: tuple[WhatIf, ...]
    recommendations: tuple[Recommendation, ...]
    warnings: tuple[str, ...] = ()
    startup_s: float | None = None
    uncertain: bool = False
    past_startup: bool = True

    @property
    def step_shares_cores(self) -> bool:
        """The cores bind, shared by the training step and the pipeline, the step using most.

        The verdict then names the step (``input_bound`` is False), yet CPU
        the pipeline stops using goes to the step: a cheaper pipeline (a
        cache) still raises the rate, while more parallelism cannot.
        """
        return self.bottleneck_kind == "consumer" and self.bottleneck.kind == "cpu"

    @property
    def prediction_error(self) -> float | None:
        """``|predicted - observed| / observed`` for the pipeline as it ran.

        None without both rates, or when the run never got past its start-up.
        """
        predicted, observed = self.predicted_rate, self.observed_rate
        if not self.past_startup:
            return None
        if not (math.isfinite(predicted) and math.isfinite(observed) and observed > 0):
            return None
        return abs(predicted - observed) / observed
