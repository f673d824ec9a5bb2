"""Offloading preprocessing to remote workers: where to cut, how many workers, what rate.

When a pipeline is CPU-bound with every usable core busy, more parallelism
cannot help and the answer at scale is more machines: the stages below a
cut point run on remote workers (tf.data service for tf.data, an engine such
as Ray Data for a torch DataLoader) and their output crosses the network to
the training process. The model (README.md, How it works) splits the
pipeline at the cut:

- remote: the CPU per root element of the stages that move, spread over N
  workers of ``worker_cores`` each, and each moved stage's own bound N times;
- network: bytes per root element crossing at the cut (the cut stage's
  output bytes as recorded, times how its elements compressed as
  ``distribute`` sends them when that was sampled, else uncompressed) over
  the bandwidth (the link's rate the user gave, else the one probed when
  the run made requests, else :data:`ASSUMED_BPS`; the reason says which);
- local: the stages that stay, the training step's CPU, the unpacking of
  the received bytes (:data:`RECEIVE_BPS_PER_CORE`) and their uncompressing
  (sampled) on this machine's cores, the stages that stay keeping their own
  bounds, and the consumer; the compressing joins the remote CPU.

The rate with N workers is the smallest of these; the N that reaches the
rest (the consumer's rate, or the local or network bound before it) is the
recommendation. A stage that calls Python or holds state
(``py_function``, ``numpy_function``, ``from_generator``, variables: the
profile's ``stateful`` knob) cannot be serialized to a worker in another
process (docs/data-service.md), so no cut moves it; the cut goes above the
last of them or nowhere. Pure: a Scene in, results out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plumber.analyzers import text
from plumber.analyzers.bounds import CLEARLY_ABOVE, binding
from plumber.analyzers.results import Recommendation, WhatIf
from plumber.analyzers.stages import RECEIVE_BPS_PER_CORE, SATURATED, cpu_demand
from plumber.analyzers.topology import below
from plumber.analyzers.whatif import NEARLY_AS_GOOD, Scene
from plumber.records.appliable import appliable
from plumber.records.kinds import POOL, SERVICE, is_loader_root
from plumber.records.profile import Compression, Pipeline, Stage

#: Bandwidth taken when the run probed none: a 10 Gb/s link between hosts, in bytes/s.
ASSUMED_BPS = 10e9 / 8

#: The most remote workers a what-if proposes.
MAX_WORKERS = 64

#: Requests each worker may have outstanding: one being produced, one in transit.
REQUESTS_PER_WORKER = 2

#: Share of the memory budget the elements requested and not yet consumed may take.
OUTSTANDING_MEMORY_SHARE = 0.25

#: Source ops (without ``Dataset``) that tf.data service splits in ``distributed_epoch``,
#: each checked on TF 2.21 (docs/data-service.md).
SPLITTABLE_SOURCES = ("Range", "TensorSlice", "Tensor", "TFRecord", "TextLine",
                      "FixedLengthRecord", "Zip", "ListFiles")

#: The engine each framework's pipelines are offloaded to, and the what-if knob naming it.
TF_SERVICE = "tf.data service"
RAY_DATA = "Ray Data"
KNOBS = {TF_SERVICE: "data_service", RAY_DATA: "ray_data"}

DISTRIBUTED_EPOCH = "distributed_epoch"
PARALLEL_EPOCHS = "parallel_epochs"

#: What each processing mode means for an epoch, in the words the reason uses.
MODE_MEANING = {
    DISTRIBUTED_EPOCH: (
        "each element once per epoch, as written, split among the workers as they ask; "
        "the order is not the written one, and a batch at or below the cut is formed on "
        "each worker, so batch members (and partial batches) differ"
    ),
    PARALLEL_EPOCHS: (
        "every worker produces the whole dataset, so one epoch yields each element once "
        "per worker, interleaved; bound the stream (take) or count epochs accordingly"
    ),
}


@dataclass(frozen=True)
class Offload:
    """The chosen cut and what the model predicts for it.

    ``cut`` is the last stage that runs remotely (``distribute`` goes right
    after it); ``moved`` every stage that runs remotely; ``kept`` the stages
    that could not move, each with the reason. ``rates`` is the predicted
    rate for 1, 2, ... ``workers`` remote workers; ``limit`` names what
    holds the rate once the workers suffice. ``bytes_per_root`` is what the
    cut produces per root element, ``bytes_sent_per_root`` what crosses
    (compressed, when ``compression`` sampled how its elements compress).
    """

    engine: str
    cut: Stage
    moved: tuple[str, ...]
    kept: tuple[str, ...]
    remote_cpu_s: float
    local_cpu_s: float
    bytes_per_root: float | None
    bandwidth_bps: float
    bandwidth_basis: str
    worker_cores: float
    workers: int
    rates: tuple[float, ...]
    limit: str
    processing_mode: str
    max_outstanding_requests: int
    bytes_sent_per_root: float | None = None
    compression: Compression | None = None

    @property
    def predicted_rate(self) -> float:
        return self.rates[-1]


def offload(scene: Scene) -> Offload | None:
    """The best cut when the pipeline is CPU-bound with every usable core busy, else None.

    A tf.data cut is a stage of the main chain that a plan can find where it
    is applied (:func:`plumber.records.appliable.appliable`), so ``plumber
    service plan`` can write it; a DataLoader's is its worker pool. Of the
    cuts within 1% of the best rate, the one needing fewest workers, then
    sending fewest elements across, then leaving least CPU here, wins. None
    too when no cut would clearly beat the rate as it is (the stages that
    take the CPU cannot move, or nothing was measured to move).

    Elements across come before CPU left here because each is a request to
    a worker, a cost the model does not price. Measured on
    ``benchmarks/data_service.py`` (one worker on the other core): a cut
    before the batch of 16 delivered 26.6 batches/s where 31.2 were
    predicted, a cut after it 37.1 where 36.8 were.
    """
    if not cores_all_busy(scene):
        return None
    chain = _chain(scene.pipeline)
    loader = is_loader_root(scene.pipeline.stage(scene.pipeline.root).kind)
    pool = next((s for s in chain if s.kind == POOL), None)
    candidates = ([pool] if pool is not None else []) if loader else [
        s for s in chain if appliable(scene.pipeline, s)]
    options = [o for o in (_option(scene, c, loader) for c in candidates)
               if o is not None and o.predicted_rate > CLEARLY_ABOVE * scene.predicted_rate]
    if not options:
        return None
    best = max(o.predicted_rate for o in options)
    good = [o for o in options if o.predicted_rate >= NEARLY_AS_GOOD * best]
    return min(good, key=lambda o: (o.workers, _crossing_per_root(o.cut, scene.pipeline),
                                    o.local_cpu_s))


def cores_all_busy(scene: Scene) -> bool:
    """CPU binds (the shared cores, or a stage computing on all of them) and the run was
    measured keeping the usable cores busy (not only the model)."""
    if not scene.bounds or scene.busy_share is None or scene.busy_share < SATURATED:
        return False
    return binding(scene.bounds).kind == "cpu"


def _chain(pipeline: Pipeline) -> list[Stage]:
    """The stages from the source up to the root along first inputs (the main chain)."""
    by_id = {s.id: s for s in pipeline.stages}
    chain: list[Stage] = []
    stage = by_id.get(pipeline.root)
    while stage is not None and stage not in chain:
        chain.append(stage)
        stage = by_id.get(stage.inputs[0]) if stage.inputs else None
    return chain[::-1]


def _bandwidth(scene: Scene) -> tuple[float, str]:
    """The network's rate to the workers, in bytes/s, and where it comes from."""
    given = scene.limits.link_bps
    if given is not None and given > 0:
        return given, "given with --link-bandwidth"
    probed = scene.network.available_bps if scene.network is not None else None
    if probed is not None and probed > 0:
        return probed, "probed"
    return ASSUMED_BPS, "assumed, not measured"


def unmovable(stage: Stage) -> str | None:
    """Why ``stage`` cannot run on a remote worker, or None when it can."""
    if SERVICE in stage.knobs:
        return (f"{text.where(stage)} already reads from the tf.data service at "
                f"{stage.knobs[SERVICE]}: the stages below it run on that service's "
                f"workers")
    if stage.knobs.get("stateful") is True:
        return (f"{text.where(stage)} calls Python or holds state (py_function, "
                f"numpy_function, from_generator, variables): it cannot be serialized to a "
                f"worker in another process")
    return None


def _option(scene: Scene, cut: Stage, loader: bool) -> Offload | None:
    """The prediction for cutting after ``cut``; None when a stage below it cannot move."""
    pipeline = scene.pipeline
    moved = below(pipeline, cut.id)
    stages = [s for s in pipeline.stages if s.id in moved]
    if not loader and any(unmovable(s) for s in stages):
        return None
    analyses = {a.stage_id: a for a in scene.analyses}
    counted = [a for a in scene.analyses if a.pool is None and a.resource != "unmeasured"]
    remote = sum(cpu_demand(a) or 0.0 for a in counted if a.stage_id in moved)
    if not remote > 0:
        return None
    roots = _roots(pipeline)
    crossing = _bytes_per_root(cut, roots)
    packing = _packing(cut)
    sent = crossing
    step = scene.limits.consumer_cpu_per_root or 0.0
    local = sum(cpu_demand(a) or 0.0 for a in counted if a.stage_id not in moved) + step
    if packing is not None:
        per_root = _crossing_per_root(cut, pipeline)
        remote += packing.compress_cpu_s / packing.elements * per_root
        local += packing.uncompress_cpu_s / packing.elements * per_root
        sent = None if crossing is None else \
            crossing * packing.compressed_bytes / packing.raw_bytes
    local += (sent or 0.0) / RECEIVE_BPS_PER_CORE
    bandwidth, bandwidth_basis = _bandwidth(scene)
    cores = scene.limits.cores
    fixed = {"the training step": scene.limits.consumer_rate or math.inf,
             "this machine's CPU": cores / local if local > 0 else math.inf,
             "the network": bandwidth / sent if sent else math.inf}
    for a in counted:
        if a.stage_id not in moved and a.max_rate is not None and a.resource != "none":
            fixed[text.where(pipeline.stage(a.stage_id))] = a.max_rate
    limit = min(fixed, key=lambda k: fixed[k])
    target = fixed[limit]
    per_worker = [cores / remote] + [
        a.max_rate for a in (analyses[s.id] for s in stages if s.id in analyses)
        if a.pool is None and a.kind != POOL and a.max_rate is not None
        and a.resource in ("cpu", "latency", "disk")
    ]
    worker_rate = min(per_worker)
    if not math.isfinite(target):
        return None
    workers = min(MAX_WORKERS, max(1, math.ceil(target / worker_rate - 1e-9)))
    rates = tuple(min(target, n * worker_rate) for n in range(1, workers + 1))
    return Offload(
        engine=RAY_DATA if loader else TF_SERVICE,
        cut=cut,
        moved=tuple(s.id for s in stages),
        kept=tuple(r for r in (unmovable(s) for s in pipeline.stages if s.id not in moved)
                   if r is not None),
        remote_cpu_s=remote,
        local_cpu_s=local,
        bytes_per_root=crossing,
        bandwidth_bps=bandwidth,
        bandwidth_basis=bandwidth_basis,
        worker_cores=cores,
        workers=workers,
        rates=rates,
        limit=limit if rates[-1] >= target else f"{workers} workers (at most {MAX_WORKERS})",
        processing_mode=_mode(stages),
        max_outstanding_requests=_outstanding(scene, cut, workers),
        bytes_sent_per_root=sent,
        compression=packing,
    )


def _packing(cut: Stage) -> Compression | None:
    """How the cut's elements compressed, where sampled (and not empty)."""
    sample = cut.stats.compression if cut.stats is not None else None
    if sample is None or sample.elements <= 0 or sample.raw_bytes <= 0:
        return None
    return sample


def _roots(pipeline: Pipeline) -> int:
    root = pipeline.stage(pipeline.root)
    elements = root.stats.elements if root.stats is not None else 0
    return max(elements, 1)


def _crossing_per_root(cut: Stage, pipeline: Pipeline) -> float:
    """Elements the cut stage produced per root element: requests to the workers per root."""
    if cut.stats is None or cut.stats.elements <= 0:
        return math.inf
    return cut.stats.elements / _roots(pipeline)


def _bytes_per_root(cut: Stage, roots: int) -> float | None:
    """Bytes the cut stage produced per root element; None when not recorded."""
    if cut.stats is None or cut.stats.bytes_produced <= 0:
        return None
    return cut.stats.bytes_produced / roots


def _mode(stages: list[Stage]) -> str:
    """``distributed_epoch`` when every source that moves is one the service splits."""
    sources = [s for s in stages if not s.inputs and s.nested_in is None]
    splittable = all(s.op.replace("Dataset", "").startswith(SPLITTABLE_SOURCES) for s in sources)
    return DISTRIBUTED_EPOCH if sources and splittable else PARALLEL_EPOCHS


def _outstanding(scene: Scene, cut: Stage, workers: int) -> int:
    """Requests in flight: two per worker, as many as fit the memory share for outstanding data."""
    wanted = REQUESTS_PER_WORKER * workers
    stats = cut.stats
    if stats is None or stats.elements <= 0 or stats.bytes_produced <= 0:
        return wanted
    per_element = stats.bytes_produced / stats.elements
    fits = int(OUTSTANDING_MEMORY_SHARE * scene.memory_budget // per_element)
    return max(1, min(wanted, fits))


def offload_what_if(scene: Scene) -> WhatIf | None:
    """The offload as a what-if row, or None when it does not apply (see :func:`offload`).

    When the cores are all busy but the stages that would have to move
    cannot, the row says so (not proposed, naming them).
    """
    chosen = offload(scene)
    if chosen is None:
        return _not_movable(scene)
    return WhatIf(
        stage_id=chosen.cut.id,
        knob=KNOBS[chosen.engine],
        value=str(chosen.workers),
        change=_change(chosen),
        predicted_rate=chosen.predicted_rate,
        speedup=scene.speedup(chosen.predicted_rate),
        reason=reason(chosen),
    )


def _not_movable(scene: Scene) -> WhatIf | None:
    """A row saying why nothing moves: the busy cores serve stages that cannot leave."""
    blocked = [(s, why) for s in scene.pipeline.stages if (why := unmovable(s)) is not None]
    if not cores_all_busy(scene) or not blocked:
        return None
    stage, _ = blocked[0]
    loader = is_loader_root(scene.pipeline.stage(scene.pipeline.root).kind)
    engine = RAY_DATA if loader else TF_SERVICE
    return WhatIf(
        stage_id=stage.id,
        knob=KNOBS[engine],
        value="0",
        change=f"run the stages up to {text.where(stage)} on {engine} workers",
        predicted_rate=scene.predicted_rate,
        speedup=scene.speedup(scene.predicted_rate),
        reason="Not proposed: " + "; ".join(why for _, why in blocked) + (
            ", and the stages that could move take too little of the CPU to gain "
            f"{CLEARLY_ABOVE - 1:.0%}."),
        feasible=False,
    )


def _change(chosen: Offload) -> str:
    where = text.where(chosen.cut)
    if chosen.engine == RAY_DATA:
        return (f"run the work of {where} on a Ray Data actor pool of {chosen.workers} "
                f"remote CPU workers")
    return (f"run {where} and the {len(chosen.moved) - 1} stage(s) below it on "
            f"{chosen.workers} tf.data service worker(s) ({chosen.processing_mode})")


def reason(chosen: Offload) -> str:
    """The model's arithmetic and the assumptions behind it, in sentences."""
    per_worker = text.rate(chosen.rates[0])
    link = f"{text.size(chosen.bandwidth_bps)}/s {chosen.bandwidth_basis}"
    sample = chosen.compression
    if chosen.bytes_per_root is None or chosen.bytes_sent_per_root is None:
        crossing = ("the bytes crossing at the cut were not recorded, so the network is "
                    "left out")
    elif sample is None:
        crossing = (f"{text.size(chosen.bytes_per_root)} per root element cross the network "
                    f"at the cut ({link}; counted uncompressed, since how they compress was "
                    f"not sampled)")
    else:
        crossing = (f"{text.size(chosen.bytes_per_root)} per root element leave the cut and "
                    f"{text.size(chosen.bytes_sent_per_root)} cross the network as distribute "
                    f"compresses them ({link}; sampled on {sample.elements} elements, whose "
                    f"compressing the workers' CPU and uncompressing this machine's includes)")
    parts = [
        f"The stages that move need {text.ms(chosen.remote_cpu_s)} of CPU per root element: "
        f"one worker with {chosen.worker_cores:g} cores (as this machine, assumed) delivers "
        f"about {per_worker}; {crossing}; what stays here needs {text.ms(chosen.local_cpu_s)} "
        f"per root element on this machine's cores.",
        f"{chosen.workers} worker(s) reach {text.rate(chosen.predicted_rate)}, where "
        f"{chosen.limit} holds the rate.",
    ]
    if chosen.engine == TF_SERVICE:
        parts.append(
            f"Processing mode {chosen.processing_mode}: {MODE_MEANING[chosen.processing_mode]}. "
            f"max_outstanding_requests={chosen.max_outstanding_requests} bounds the elements "
            f"held at the training process."
        )
    parts.extend(f"Not moved: {k}." for k in chosen.kept)
    return " ".join(parts)


def offload_recommendation(scene: Scene, what_if: WhatIf) -> Recommendation | None:
    """The recommendation with the source edit for an offload what-if, when it is worthwhile."""
    chosen = offload(scene)
    if chosen is None or what_if.knob not in KNOBS.values():
        return None
    cut = chosen.cut
    if chosen.engine == RAY_DATA:
        old, new = "DataLoader(dataset, ...)", ray_data_stream(chosen)
        title = (f"Offload the DataLoader's work to {chosen.workers} Ray Data workers on "
                 f"other hosts")
    else:
        call = f"{cut.op}(...)" if cut.kind == "source" else f".{cut.kind}(...)"
        old, new = call, f"{call}.apply({distribute_call(chosen, 'SERVICE')})"
        if cut.source is not None and cut.source.built_by:
            old, new = f"{cut.source.builder}(...)", (
                f"{new} inside it (no line of yours builds it: plumber service plan and "
                f"plumber run --data-service place it)")
        title = (f"Offload {cut.id} and the stages below it to {chosen.workers} tf.data "
                 f"service workers on other hosts")
    return Recommendation(
        title=title,
        stage_id=cut.id,
        source=cut.source,
        old=old,
        new=new,
        predicted_rate=what_if.predicted_rate,
        speedup=what_if.speedup,
        reason=f"{what_if.reason} "
        f"{how_to_run(chosen) if chosen.engine == TF_SERVICE else RAY_SAMPLES}",
        sketch=ray_data_sketch(chosen) if chosen.engine == RAY_DATA else "",
    )


def distribute_call(chosen: Offload, service: str) -> str:
    """The ``distribute(...)`` call for the cut, ``service`` spelt as given (name or literal)."""
    return (f"tf.data.experimental.service.distribute(processing_mode="
            f"\"{chosen.processing_mode}\", service={service}, "
            f"max_outstanding_requests={chosen.max_outstanding_requests})")


def how_to_run(chosen: Offload) -> str:
    """How to start the workers and apply the cut without editing the script."""
    return (
        f"Start a dispatcher and workers with plumber service start --workers N (on each "
        f"worker host: plumber service start --dispatcher HOST:PORT --workers 1; "
        f"{chosen.workers} workers in all), write the cut into a plan with plumber service "
        f"plan PROFILE SCRIPT --plan plan.json, then run plumber run --plan plan.json "
        f"--data-service grpc://HOST:PORT SCRIPT."
    )


def ray_data_stream(chosen: Offload) -> str:
    """One line: a Ray Data actor pool doing the DataLoader's per-sample work, streamed."""
    return (f"ray.data.range(len(dataset)).map_batches(Samples, fn_constructor_args=(dataset,), "
            f"concurrency={ray_actors(chosen)}).iter_torch_batches(batch_size=BATCH_SIZE)")


def ray_actors(chosen: Offload) -> int:
    """Actors for the pool: one per core of the workers the model counts (a Ray Data actor
    takes one CPU and runs one batch at a time)."""
    return chosen.workers * max(1, math.floor(chosen.worker_cores))


def ray_data_sketch(chosen: Offload) -> str:
    """The whole Ray Data edit for the DataLoader, as docs/data-service.md checked it.

    Filled in from the loader as recorded: its batch size, the workers, and
    its sampler's order, drawn anew each epoch (a ``RandomSampler``'s as a
    shuffle of the ids; any other sampler but the sequential one passes its
    indices).
    """
    knobs = chosen.cut.knobs
    batch = knobs.get("batch_size") or "BATCH_SIZE"
    sampler = knobs.get("sampler", "")
    if sampler == "SequentialSampler":
        ids = "ray.data.range(len(dataset))"
    elif sampler == "RandomSampler":
        ids = "ray.data.range(len(dataset)).random_shuffle()"
    else:
        ids = "ray.data.from_items([{\"id\": int(i)} for i in loader.sampler])"
    shuffle_note = [
        "    # random_shuffle runs tasks beside the pool: with an actor on every CPU of the",
        "    # cluster they get none and the epoch waits for good, so leave one free",
    ] if sampler == "RandomSampler" else []
    cores = max(1, math.floor(chosen.worker_cores))
    return "\n".join([
        "import ray",
        "from torch.utils.data import default_collate",
        "",
        "",
        "class Samples:",
        "    def __init__(self, dataset):",
        "        self.dataset = dataset  # your torch Dataset, one copy per actor",
        "",
        "    def __call__(self, batch):",
        "        fields = default_collate([self.dataset[int(i)] for i in batch[\"id\"]])",
        "        fields = fields if isinstance(fields, (tuple, list)) else (fields,)",
        "        return {str(k): field.numpy() for k, field in enumerate(fields)}",
        "",
        "",
        "for epoch in range(EPOCHS):",
        f"    # the ids in the order of the loader's {sampler or 'sampler'}, drawn anew each epoch",
        *shuffle_note,
        f"    # {chosen.workers} worker host(s) of {cores} cores: one actor per core",
        f"    samples = {ids}.map_batches(",
        f"        Samples, fn_constructor_args=(dataset,), concurrency={ray_actors(chosen)})",
        f"    for batch in samples.iter_torch_batches(batch_size={batch}):",
        "        fields = batch[\"0\"], batch[\"1\"]  # one tensor per field of your samples",
        "        ...  # the training step",
    ])


#: What ``Samples`` in :func:`ray_data_stream` is (:func:`ray_data_sketch` writes it whole).
RAY_SAMPLES = (
    "Samples is a class whose __init__(self, dataset) keeps your Dataset and whose "
    "__call__(self, batch) collates [self.dataset[int(i)] for i in batch[\"id\"]] with "
    "torch's default_collate and returns one numpy column per field ({\"0\": images, "
    "\"1\": labels}): Ray Data runs one per actor of the pool, on the remote CPU "
    "workers, and streams batches of those columns to the training loop as torch tensors "
    "(batch[\"0\"], batch[\"1\"]); the code sketch with this advice has it whole, run "
    "with Ray 2.60 (docs/data-service.md). plumber does not apply it."
)
