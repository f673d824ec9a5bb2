"""Turn what the tf.data hooks saw into Pipeline records.

For each dataset the script iterated: read its written structure, find the
stages whose output changes between passes by running their prefixes twice,
align the model of every productive iterator onto it (summing over
iterators, e.g. one per epoch), measure per-stage CPU by prefix runs, and
describe the consumer and the passes its iterators made over the data.
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from plumber.measure.steady import median_step, steady_of
from plumber.records.kinds import SERVICE
from plumber.records.profile import (
    Compression,
    ConsumerStats,
    IteratorPass,
    Pipeline,
    Stage,
    StageStats,
)
from plumber.tf.align import RunStage, align
from plumber.tf.compressprobe import ELEMENTS, CompressionSampler
from plumber.tf.cpuprobe import measure_prefixes, own_cpu_per_root
from plumber.tf.determinism import BUDGET_S as DETERMINISM_BUDGET_S
from plumber.tf.determinism import find_random_stages
from plumber.tf.hooks import IteratorWatch, TfHooks, WatchedPipeline
from plumber.tf.written import NESTING_KINDS, WrittenStage, is_service_read, read_written


def build_pipelines(
    hooks: TfHooks,
    cpu_probe_s: float,
    clock_origin: float | None = None,
    check_randomness: bool = True,
) -> tuple[Pipeline, ...]:
    """Pipeline records for every watched dataset whose iterators produced data.

    ``clock_origin`` (the resource samples' time 0 on ``time.monotonic()``)
    places the iterators' steady windows on the samples' clock; without it
    they are not placed. Without ``check_randomness`` no prefix is read
    again to find random stages, and each pipeline's notes say so.
    """
    productive = [p for p in hooks.pipelines.values() if _productive(p)]
    budget = cpu_probe_s / max(len(productive), 1)
    check_s = DETERMINISM_BUDGET_S / max(len(productive), 1) if check_randomness else 0.0
    return tuple(
        _build_one(f"pipeline-{i}", watched, hooks, budget, check_s, clock_origin)
        for i, watched in enumerate(productive)
    )


def _productive(watched: WatchedPipeline) -> bool:
    return any(w.model.root_elements > 0 or w.python_calls > 0 for w in watched.iterators)


def _build_one(
    pipeline_id: str,
    watched: WatchedPipeline,
    hooks: TfHooks,
    cpu_probe_s: float,
    check_s: float,
    clock_origin: float | None,
) -> Pipeline:
    written = read_written(watched.dataset, hooks.source_of, hooks.distributed_of)
    iterators = [w for w in watched.iterators if w.model.root_elements > 0]
    notes: list[str] = [
        f"{stage.id} is random: two fresh passes over its output differed, so nothing "
        f"is cached after it"
        for stage in find_random_stages(written, check_s)
    ] if check_s > 0 else ["not checked for random stages (its prefixes were not read again)"]
    stages: dict[str, RunStage] = {}
    root = written.id
    for watch in iterators:
        watch.model.extrapolate()
        if any(n.extrapolated for n in watch.model.nodes.values()):
            note = ("counters of stages TF discarded at the end of the data were "
                    "extrapolated from their last poll")
            if note not in notes:
                notes.append(note)
        alignment = align(written, watch.model)
        root = alignment.root
        for stage_id, run in alignment.stages.items():
            if stage_id in stages:
                stages[stage_id].merge(run)
            else:
                stages[stage_id] = run
    if not iterators:
        notes.append("TF's autotune model was not available: per-stage statistics are missing")
        stages = {w.id: RunStage(id=w.id, kind=w.kind, op=w.op,
                                 inputs=[i.id for i in w.inputs]) for w in written.walk()}
    root_elements = stages[root].elements if root in stages else 0
    visit = {
        sid: s.elements / root_elements
        for sid, s in stages.items()
        if s.matched and root_elements > 0
    }
    # How the elements of each stage that produced bytes compress, from what the CPU probe reads.
    compression = CompressionSampler({sid for sid, s in stages.items() if s.bytes_produced > 0})
    cpu = _cpu_times(written, stages, visit, root_elements, cpu_probe_s, notes, compression)
    by_id = {w.id: w for w in written.walk()}
    records = tuple(
        _stage_record(run, by_id.get(sid), cpu.get(sid), compression.samples.get(sid))
        for sid, run in stages.items()
    ) + _remote_records(written)
    consumer, duration = _consumer(watched.iterators, clock_origin)
    if watched.infinite:
        notes.append("the pipeline is infinite (repeat()); statistics cover the profiled part")
    return Pipeline(
        id=pipeline_id,
        root=root,
        stages=records,
        element_spec=_element_spec(watched.dataset),
        consumer=consumer,
        duration_s=duration,
        infinite=watched.infinite,
        notes=tuple(notes),
        passes=_passes(watched.iterators, written.knobs.get("cardinality")),
    )


def _cpu_times(
    written: WrittenStage,
    stages: dict[str, RunStage],
    visit: dict[str, float],
    root_elements: int,
    budget_s: float,
    notes: list[str],
    on_elements: CompressionSampler,
) -> dict[str, float]:
    """CPU seconds over the run per stage id, from prefix measurements; the elements the
    prefixes yield go to ``on_elements`` too."""
    if budget_s <= 0:
        notes.append("per-stage CPU time was not measured (CPU probe disabled)")
        return {}
    if root_elements == 0:
        notes.append("per-stage CPU time was not measured: TF's model counted no element "
                     "at the pipeline's root")
        return {}
    local = [w for w in written.walk() if not any(is_service_read(s.dataset) for s in w.walk())]
    costs = measure_prefixes(local, budget_s, on_elements, keep=ELEMENTS)
    notes.append(
        f"per-stage CPU time measured by re-running each pipeline prefix briefly "
        f"after the script ({budget_s:.1f} s budget)"
    )
    if len(local) < len(written.walk()):
        notes.append(
            "the stages from the tf.data service read up were not re-run for their CPU "
            "time: reading the service again would start another job on its workers, or "
            "take elements from a job shared with other readers"
        )
    cpu: dict[str, float] = {}
    for w in written.walk():
        per_root = own_cpu_per_root(w, costs, visit)
        if per_root is not None:
            cpu[w.id] = per_root * root_elements
    _apportion_nested(stages, cpu)
    return cpu


def _apportion_nested(stages: dict[str, RunStage], cpu: dict[str, float]) -> None:
    """Split an interleave prefix's CPU over it and its nested stages by wall time.

    The prefix run of an interleave includes the work of its cycle elements,
    which TF's model reports as separate nested nodes.
    """
    for parent_id, parent in stages.items():
        if parent.kind not in NESTING_KINDS or parent_id not in cpu:
            continue
        nested = [s for s in stages.values() if s.nested_in == parent_id]
        wall = parent.processing_time_s + sum(s.processing_time_s for s in nested)
        if not nested or wall <= 0:
            continue
        total = cpu[parent_id]
        cpu[parent_id] = total * parent.processing_time_s / wall
        for stage in nested:
            cpu[stage.id] = total * stage.processing_time_s / wall


def _remote_records(written: WrittenStage) -> tuple[Stage, ...]:
    """The stages each service read's ``distribute`` sent to the service, unmeasured here."""
    records: list[Stage] = []
    for read in written.walk():
        if read.remote is None:
            continue
        address = read.knobs.get(SERVICE)
        reason = (f"ran on the tf.data service's workers{f' ({address})' if address else ''}, "
                  f"not in this process: not measured here")
        records.extend(
            Stage(id=w.id, kind=w.kind, op=w.op, inputs=tuple(i.id for i in w.inputs),
                  knobs=dict(w.knobs), source=w.source, unmeasured_reason=reason)
            for w in read.remote.walk()
        )
        records.extend(_remote_records(read.remote))
    return tuple(records)


def _stage_record(run: RunStage, w: WrittenStage | None, cpu_s: float | None,
                  compression: Compression | None = None) -> Stage:
    stats = None
    reason = None
    if run.matched:
        stats = StageStats(
            elements=run.elements,
            wall_time_s=run.processing_time_s,
            cpu_time_s=cpu_s,
            bytes_produced=run.bytes_produced,
            bytes_consumed=run.bytes_consumed,
            buffered_elements_mean=(
                run.buffered_sum / run.buffer_samples if run.buffer_samples else None
            ),
            buffer_size=int(run.buffer_size) if run.buffer_size is not None else None,
            parallelism=int(run.parallelism) if run.parallelism is not None else None,
            compression=compression,
        )
    else:
        reason = run.note or "not reported by TF's autotune model"
    knobs = dict(w.knobs) if w is not None else {}
    if run.note and run.matched:
        knobs.setdefault("note", run.note)
    remote = (w.remote.id,) if w is not None and w.remote is not None else ()
    return Stage(
        id=run.id,
        kind=run.kind,
        op=run.op,
        inputs=tuple(run.inputs) + remote,
        knobs=knobs,
        source=w.source if w is not None else None,
        written=run.written,
        as_run=tuple(run.as_run),
        rewrite=run.rewrite,
        nested_in=run.nested_in,
        stats=stats,
        unmeasured_reason=reason,
    )


def _consumer(
    iterators: list[IteratorWatch], clock_origin: float | None
) -> tuple[ConsumerStats | None, float]:
    """The consumer's wait vs step time, and the iteration's duration."""
    timed = [w for w in iterators if w.python_calls > 0]
    if timed:
        wait = sum(w.wait_s for w in timed)
        step = sum(w.step_s for w in timed)
        calls = sum(w.python_calls for w in timed)
        pairs = sum(w.timed_steps for w in timed)
        spread = {
            "wait_sd_s": _sd(pairs, sum(w.timed_wait_s for w in timed),
                             sum(w.wait_sq for w in timed)),
            "step_sd_s": _sd(pairs, sum(w.timed_step_s for w in timed),
                             sum(w.step_sq for w in timed)),
            "step_median_s": median_step([s for w in timed for s in w.recent_steps]),
        }
        return ConsumerStats("python_next", calls, wait, step, **spread,
                             **_steady(timed, clock_origin, timed_wait=True)), wait + step
    modelled = [w for w in iterators if w.model.root_elements > 0]
    if not modelled:
        return None, 0.0
    # Inside a compiled function (Keras fit) Python never sees get_next: the
    # step time comes from TF's own record of gaps between GetNext calls and
    # the wait is what remains of the iterator's active time. The median gap
    # is the steady step: an epoch's first gap (the compiled step's first
    # run) took 63-85 ms where the others took about 10 (16 steps per epoch).
    steps = sum(w.model.root_elements for w in modelled)
    active = sum(
        (w.last_progress_at or w.created_at) - w.created_at for w in modelled
    )
    gaps = [g * 1e-6 for w in modelled for g in w.model.gap_times_us]
    step = steps * fmean(gaps) if gaps else 0.0
    wait = max(active - step, 0.0)
    return ConsumerStats(
        "tf_model_gaps", steps, wait, min(step, active), True,
        step_median_s=median_step(gaps), **_steady(modelled, clock_origin),
    ), active


def _steady(
    iterators: list[IteratorWatch], clock_origin: float | None, *, timed_wait: bool = False
) -> dict[str, Any]:
    """The steady window's fields of ConsumerStats (start-up excluded), None where unseen.

    The wait over the window only where Python timed each ``next()``
    (``timed_wait``): inside a compiled function the wait is estimated for the
    whole iteration.
    """
    steady = steady_of((w.steady for w in iterators), clock_origin)
    if steady is None:
        return {"steady_steps": None, "steady_s": None, "cpu_s": None}
    return {"steady_steps": steady.steps, "steady_s": steady.seconds, "cpu_s": steady.cpu_s,
            "steady_spans": steady.spans,
            "steady_wait_s": steady.wait_s if timed_wait else None}


def _passes(iterators: list[IteratorWatch], cardinality: object) -> tuple[IteratorPass, ...]:
    """One pass per iterator that delivered elements (Keras's peeking iterators deliver none).

    A pass is complete when the iterator reached the end of the data, or
    delivered every element of a root whose cardinality TF knows (Keras
    ``fit`` stops there without asking for the end).
    """
    whole = cardinality if isinstance(cardinality, int) and cardinality > 0 else None
    return tuple(
        IteratorPass(
            elements=w.delivered,
            complete=w.ended or (whole is not None and w.delivered >= whole),
        )
        for w in iterators
        if w.delivered > 0
    )


def _sd(count: int, total: float, squares: float) -> float | None:
    """Standard deviation from a count, a sum and a sum of squares; None below two values."""
    if count < 2:
        return None
    mean = total / count
    return math.sqrt(max(squares / count - mean * mean, 0.0))


def _element_spec(dataset: object) -> str:
    try:
        return str(dataset.element_spec)[:500]  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return ""
