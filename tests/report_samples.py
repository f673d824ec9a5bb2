"""Hand-built profiles and diagnoses for the report tests (unit and browser).

The reports are tested on records built here rather than on the analysis's
output, so a report test does not depend on how the analysis computes
anything. ``sample_*`` is the small all-features pipeline the unit tests
check value by value; the ``*_case`` builders are the situations a reader
meets (input-bound, consumer-bound, failed run, nested interleave + zip,
a torch DataLoader reading over the network), which the browser tests
render and screenshot.
"""

from __future__ import annotations

import dataclasses
import math

from plumber.analyzers.results import Bound, Diagnosis, Recommendation, StageAnalysis, WhatIf
from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting
from plumber.records.profile import (
    ConsumerStats,
    Machine,
    NetworkRequests,
    Pipeline,
    Profile,
    RunInfo,
    SourceLocation,
    Stage,
    StageStats,
    ThreadCpu,
    TimeSeries,
    WorkerStats,
)
from tests.unit.synthetic_profiles import loader_profile

#: A user string that must never become markup.
SCRIPT = "<script>alert(1)</script>"
#: The same, as an element that runs code once the browser fails to load it.
IMG = "<img src=x onerror=alert(2)>"

#: A deep absolute path, as a real profile records it for code outside the cwd.
LONG_FILE = "/home/alice/projects/vision-models/src/vision_models/data/input_pipeline.py"

Case = tuple[Profile, tuple[Diagnosis, ...]]


def _stage(sid: str, kind: str, op: str, inputs: tuple[str, ...] = (), **kw: object) -> Stage:
    stats = kw.pop("stats", StageStats(elements=1000, wall_time_s=2.0, cpu_time_s=1.5))
    return Stage(id=sid, kind=kind, op=op, inputs=inputs, stats=stats, **kw)  # type: ignore[arg-type]


def sample_pipeline() -> Pipeline:
    """files -> interleave(TFRecord body) -> map, zipped with labels -> filter -> batch -> prefetch.

    It has a nested body, a multi-input stage, a TF rewrite, a stage TF
    added, and an unmeasured stage.
    """
    src = SourceLocation("train.py", 10, "make")
    stages = (
        _stage("source-0", "source", "TensorSlice", source=src),
        _stage(
            "interleave-0",
            "interleave",
            "ParallelInterleaveV4",
            ("source-0",),
            knobs={"cycle_length": 4, "parallelism": -1},
            source=SourceLocation("train.py", 11),
        ),
        _stage("interleave-0>TFRecord", "source", "TFRecord", nested_in="interleave-0"),
        _stage(
            "map-0",
            "map",
            "ParallelMapV2",
            ("interleave-0",),
            knobs={"parallelism": 1},
            source=SourceLocation("train.py", 12),
            as_run=("ParallelMapV2/_5",),
            rewrite="map_parallelization",
        ),
        _stage("source-1", "source", "Range", source=SourceLocation("train.py", 13)),
        _stage("zip-0", "zip", "Zip", ("map-0", "source-1"), source=SourceLocation("train.py", 14)),
        _stage(
            "filter-0",
            "filter",
            "Filter",
            ("zip-0",),
            stats=None,
            unmeasured_reason="its node left the autotune model before it was polled",
        ),
        _stage("batch-0", "batch", "BatchV2", ("filter-0",), knobs={"batch_size": 32}),
        _stage("tf-prefetch-above-batch-0", "prefetch", "Prefetch", ("batch-0",), written=False),
    )
    consumer = ConsumerStats(source="python_next", steps=500, wait_s=6.2, step_s=3.8)
    return Pipeline(
        id="train",
        root="tf-prefetch-above-batch-0",
        stages=stages,
        consumer=consumer,
        duration_s=10.0,
        notes=("the last batch was partial",),
    )


def sample_profile(samples: int = 50, **run: object) -> Profile:
    """A finished run of ``sample_pipeline`` with ``samples`` resource samples."""
    wave = [float((i * 37) % 101) for i in range(samples)]
    resources = TimeSeries(
        t=tuple(i * 0.2 for i in range(samples)),
        cpu_percent=tuple(wave),
        process_cpu_percent=tuple(2 * w for w in wave),
        disk_read_bps=tuple(w * 1e6 for w in wave),
        net_recv_bps=tuple(w * 1e4 for w in wave),
        net_sent_bps=tuple(w * 1e3 for w in wave),
        process_rss_bytes=tuple(1e9 + w * 1e6 for w in wave),
    )
    info = RunInfo(
        command=("python", "train.py", "--epochs", "2"),
        started_at="2025-01-02T03:04:05Z",
        duration_s=12.5,
        exit_status=0,
        framework="tensorflow",
        framework_version="2.21.0",
        python_version="3.11.9",
        plumber_version="0.1.0",
    )
    machine = Machine(
        cores_logical=2,
        cores_usable=2.0,
        memory_total_bytes=8_000_000_000,
        memory_available_bytes=5_000_000_000,
        gpus=({"name": "Tesla T4", "uuid": "GPU-1234-secret"},),
        gpu_status="present",
    )
    return Profile(
        run=dataclasses.replace(info, **run),  # type: ignore[arg-type]
        machine=machine,
        pipelines=(sample_pipeline(),),
        resources=resources,
        threads=(ThreadCpu("tf_data_private_threadpool", 4, 7.5),),
    )


def sample_diagnosis() -> Diagnosis:
    """map-0 bound by CPU at 40/s; raising its parallelism would give 80/s.

    A cache after the map would be faster still, but the model rules it
    out (``feasible=False``), as it does for a cache after a random stage.
    """
    map_loc = SourceLocation("train.py", 12)
    bounds = (
        Bound("map-0 at parallelism 1", "stage", 40.0, "25 ms CPU per batch", "map-0"),
        Bound("CPU (2 cores)", "cpu", 80.0, "2 cores / 25 ms"),
        Bound("consumer", "consumer", 131.0, "7.6 ms per step"),
        Bound("disk read", "disk", 5000.0, "cold read 500 MB/s"),
        Bound("prefetch", "stage", math.inf, "pass-through", "tf-prefetch-above-batch-0"),
    )
    analyses = (
        StageAnalysis(
            "map-0", "map", "ParallelMapV2", 32.0, 0.025, 0.026, 1, 40.0, 0.04, "cpu", map_loc
        ),
        StageAnalysis("source-0", "source", "TensorSlice", 0.1, 1e-5, 1e-5, 1, 1e5, 0.0, "none"),
        StageAnalysis(
            "filter-0", "filter", "Filter", None, None, None, 1, None, None, "unmeasured"
        ),
        StageAnalysis(
            "tf-prefetch-above-batch-0", "prefetch", "Prefetch", 1.0, 0.0, 0.0, 1, math.inf,
            None, "none",
        ),
    )
    recommendation = Recommendation(
        title="Parallelise the map",
        stage_id="map-0",
        source=map_loc,
        old="num_parallel_calls=None",
        new="num_parallel_calls=tf.data.AUTOTUNE",
        predicted_rate=80.0,
        speedup=2.1,
        reason="map-0 uses one core of two; the CPU bound is 80/s",
    )
    what_if = WhatIf(
        "map-0",
        "parallelism",
        "2",
        "parallelism 1 -> 2 at map-0 (train.py:12)",
        80.0,
        2.1,
        "water-filling over 2 cores",
    )
    ruled_out = WhatIf(
        "zip-0",
        "cache",
        "memory",
        "cache in memory after zip-0 (zip at train.py:14)",
        130.0,
        3.4,
        "Not proposed: the cache would hold 12 GB, more than half the available memory.",
        feasible=False,
    )
    return Diagnosis(
        pipeline_id="train",
        observed_rate=38.0,
        predicted_rate=40.0,
        bottleneck=bounds[0],
        bottleneck_kind="parallelism",
        bottleneck_stage="map-0",
        input_bound=True,
        stall_share=0.62,
        rate_if_fixed=80.0,
        summary="Input-bound: map-0 runs on one core while the other idles.",
        stages=analyses,
        bounds=bounds,
        what_ifs=(what_if, ruled_out),
        recommendations=(recommendation,),
        warnings=("prediction within 5% of the observed rate",),
    )


def consumer_bound_diagnosis() -> Diagnosis:
    """The sample pipeline, limited by its 38/s training step; the stages could give 90/s."""
    bounds = (
        Bound("consumer", "consumer", 39.0, "25.6 ms per step"),
        Bound("map-0 at parallelism 2", "stage", 90.0, "22 ms CPU per batch", "map-0"),
        Bound("CPU (2 cores)", "cpu", 95.0, "2 cores / 21 ms"),
        Bound("prefetch", "stage", math.inf, "pass-through", "tf-prefetch-above-batch-0"),
    )
    return dataclasses.replace(
        sample_diagnosis(),
        predicted_rate=39.0,
        bottleneck=bounds[0],
        bottleneck_kind="consumer",
        bottleneck_stage=None,
        input_bound=False,
        stall_share=0.03,
        rate_if_fixed=90.0,
        summary=(
            "The input pipeline is not the bottleneck: the training step limits the rate "
            "to 39/s and the loop waited for data 3% of its time. The pipeline alone could "
            "deliver about 90/s."
        ),
        bounds=bounds,
        recommendations=(),
        what_ifs=(),
        warnings=(),
    )


def input_bound_case() -> Case:
    """The sample run: map-0 held to one core, one recommendation, a cache ruled out."""
    return sample_profile(samples=300), (sample_diagnosis(),)


def consumer_bound_case() -> Case:
    """The sample run, where the training step is the limit."""
    return sample_profile(samples=300), (consumer_bound_diagnosis(),)


def failed_case() -> Case:
    """A run whose script raised after the pipeline had been profiled for a while."""
    error = (
        "Traceback (most recent call last):\n"
        '  File "train.py", line 48, in <module>\n'
        "    model.fit(dataset, epochs=2)\n"
        '  File "train.py", line 31, in parse\n'
        "    raise ValueError(f\"bad record {index}\")\n"
        "ValueError: bad record 1234"
    )
    return sample_profile(samples=120, exit_status=1, error=error), (sample_diagnosis(),)


def _at(line: int) -> SourceLocation:
    return SourceLocation(LONG_FILE, line, "make_dataset")


def nested_pipeline() -> Pipeline:
    """Shards interleaved over files interleaved over directories, zipped with labels.

    The image branch reads ``directories -> interleave(list files ->
    interleave(TFRecord)) -> decode map``; a label branch is zipped in; the
    result is batched and prefetched. Sources live at a long absolute path.
    """
    fast = StageStats(elements=64_000, wall_time_s=1.0, cpu_time_s=0.9, parallelism=1)
    stages = (
        _stage("source-0", "source", "TensorSlice", source=_at(40), stats=fast),
        _stage(
            "interleave-0", "interleave", "ParallelInterleaveV4", ("source-0",),
            knobs={"cycle_length": 4, "parallelism": -1}, source=_at(41),
            stats=StageStats(64_000, 20.0, 2.0, parallelism=2),
        ),
        _stage(
            "interleave-0>source-0", "source", "ListFiles", nested_in="interleave-0",
            source=_at(42), stats=fast,
        ),
        _stage(
            "interleave-0>interleave-0", "interleave", "ParallelInterleaveV4",
            ("interleave-0>source-0",), nested_in="interleave-0",
            knobs={"cycle_length": 8, "parallelism": 2}, source=_at(43),
            stats=StageStats(64_000, 18.0, 1.0, parallelism=2),
        ),
        _stage(
            "interleave-0>interleave-0>TFRecord", "source", "TFRecord",
            nested_in="interleave-0>interleave-0", source=_at(44),
            stats=StageStats(64_000, 16.0, 0.8, bytes_produced=6_400_000_000),
        ),
        _stage(
            "map-0", "map", "ParallelMapV2", ("interleave-0",),
            knobs={"parallelism": -1, "deterministic": False}, source=_at(46),
            stats=StageStats(64_000, 30.0, 28.0, parallelism=2),
        ),
        _stage("source-1", "source", "Range", source=_at(48), stats=fast),
        _stage("map-1", "map", "Map", ("source-1",), source=_at(49), stats=fast),
        _stage("zip-0", "zip", "Zip", ("map-0", "map-1"), source=_at(50), stats=fast),
        _stage(
            "shuffle-0", "shuffle", "ShuffleDataset", ("zip-0",),
            knobs={"buffer_size": 1024, "random": True}, source=_at(51), stats=fast,
        ),
        _stage(
            "batch-0", "batch", "BatchV2", ("shuffle-0",), knobs={"batch_size": 64},
            source=_at(52), stats=StageStats(1000, 0.5, 0.4),
        ),
        _stage(
            "prefetch-0", "prefetch", "Prefetch", ("batch-0",), knobs={"buffer_size": -1},
            source=_at(53), stats=StageStats(1000, 0.01, 0.0),
        ),
    )
    return Pipeline(
        id="pipeline-0",
        root="prefetch-0",
        stages=stages,
        element_spec="({'image': TensorSpec(shape=(64, 224, 224, 3), dtype=tf.uint8)}, "
        "TensorSpec(shape=(64,), dtype=tf.int64))",
        consumer=ConsumerStats("keras_callback", 1000, 21.0, 9.0, wait_estimated=True),
        duration_s=30.0,
    )


def nested_diagnosis() -> Diagnosis:
    """The files interleave waits on reads (latency); more shards in flight would help.

    Its pass-through prefetch has an unbounded rate, the what-ifs include a
    cache ruled out by the shuffle, and the rate once fixed is unknown (NaN).
    """
    bounds = (
        Bound("interleave-0 at parallelism 2", "stage", 33.0, "60 ms wall per batch, 90% waiting",
              "interleave-0"),
        Bound("map-0 at parallelism 2", "stage", 71.0, "28 ms CPU per batch", "map-0"),
        Bound("CPU (2 cores)", "cpu", 62.0, "2 cores / 32 ms"),
        Bound("consumer", "consumer", 111.0, "9 ms per step"),
        Bound("prefetch-0", "stage", math.inf, "pass-through", "prefetch-0"),
    )

    def analysis(sid: str, kind: str, op: str, cpu: float, wall: float, p: float,
                 rate: float, resource: str, line: int) -> StageAnalysis:
        waits = 1 - cpu / wall if wall > 0 else None
        return StageAnalysis(sid, kind, op, 64.0, cpu, wall, p, rate, waits, resource, _at(line))

    analyses = (
        analysis("source-0", "source", "TensorSlice", 1e-4, 1e-4, 1, 1e4, "none", 40),
        analysis("interleave-0", "interleave", "ParallelInterleaveV4", 0.006, 0.06, 2, 33.0,
                 "latency", 41),
        analysis("map-0", "map", "ParallelMapV2", 0.028, 0.03, 2, 71.0, "cpu", 46),
        analysis("zip-0", "zip", "Zip", 1e-4, 1e-4, 1, 1e4, "none", 50),
        analysis("batch-0", "batch", "BatchV2", 4e-4, 5e-4, 1, 2500.0, "cpu", 52),
        dataclasses.replace(
            analysis("prefetch-0", "prefetch", "Prefetch", 0.0, 0.0, 1, math.inf, "none", 53),
            visit_ratio=1.0,
        ),
    )
    raise_cycle = WhatIf(
        "interleave-0", "parallelism", "8",
        f"parallelism 2 -> 8 at interleave-0 (interleave at {LONG_FILE}:41)",
        62.0, 1.9, "Little's law: 33/s x 60 ms needs about 8 reads in flight.",
    )
    ruled_out = WhatIf(
        "batch-0", "cache", "memory", f"cache in memory after batch-0 (batch at {LONG_FILE}:52)",
        900.0, 27.3,
        "Not proposed: shuffle-0 is random or stateful, and a cache after it would replay "
        "one epoch's randomness in every epoch.",
        feasible=False,
    )
    recommendation = Recommendation(
        title="Raise the parallelism of interleave-0 to 8",
        stage_id="interleave-0",
        source=_at(41),
        old="num_parallel_calls=2",
        new="num_parallel_calls=8",
        predicted_rate=62.0,
        speedup=1.9,
        reason="It waits 90% of its time on reads; 8 in flight hide the latency (Little's law).",
    )
    return Diagnosis(
        pipeline_id="pipeline-0",
        observed_rate=32.0,
        predicted_rate=33.0,
        bottleneck=bounds[0],
        bottleneck_kind="latency",
        bottleneck_stage="interleave-0",
        input_bound=True,
        stall_share=0.7,
        rate_if_fixed=math.nan,
        summary=(
            f"interleave-0 (interleave at {LONG_FILE}:41) is the bottleneck: it waits 90% of "
            "its time (latency), so it needs more calls in flight, even beyond the cores."
        ),
        stages=analyses,
        bounds=bounds,
        what_ifs=(raise_cycle, ruled_out),
        recommendations=(recommendation,),
    )


def nested_case() -> Case:
    """A run of ``nested_pipeline`` from a script at a long absolute path."""
    script = LONG_FILE.replace("data/input_pipeline.py", "train.py")
    profile = sample_profile(samples=600, command=("python", script, "--epochs", "2"))
    return dataclasses.replace(profile, pipelines=(nested_pipeline(),)), (nested_diagnosis(),)


def hostile_case() -> Case:
    """The sample run with script and img payloads in a stage name, a path and the command."""
    payload = f"{SCRIPT}{IMG}"
    profile = sample_profile(command=("python", f"train{payload}.py"), error=payload, exit_status=1)
    pipeline = profile.pipelines[0]
    labels = f"labels{payload}"
    replaced = {
        "map-0": {"op": f"Map{payload}", "source": SourceLocation(f"/data/{payload}.py", 7)},
        "source-1": {"id": labels},
        "zip-0": {"inputs": ("map-0", labels)},
    }
    stages = tuple(dataclasses.replace(s, **replaced.get(s.id, {})) for s in pipeline.stages)
    pipelines = (dataclasses.replace(pipeline, stages=stages, element_spec=payload),)
    diagnosis = dataclasses.replace(sample_diagnosis(), summary=f"Slow map {payload}")
    return dataclasses.replace(profile, pipelines=pipelines), (diagnosis,)


def planned_case(kept: bool = True) -> tuple[Profile, tuple[Diagnosis, ...], Plan]:
    """``nested_case`` with the plan ``plumber tune`` derived for it, kept or dropped.

    The plan raises map-1 (written without ``num_parallel_calls``), caches
    after map-0 (written with AUTOTUNE) in a file whose path carries a script
    payload, and sizes the thread pool at the final prefetch.
    """
    profile, diagnoses = nested_case()
    script = profile.run.command[1]
    at = "data/input_pipeline.py"
    settings = (
        StageSetting(StageRef(at, 49, "map"), "map-1", parallelism=4,
                     reason=f"CPU-bound: 4 calls keep up {SCRIPT}", predicted_rate=61.5),
        StageSetting(StageRef(at, 46, "map"), "map-0", cache=f"/tmp/cache{IMG}",
                     reason="From the second epoch on, decode no longer runs",
                     predicted_rate=240.0),
        StageSetting(StageRef(at, 53, "prefetch"), "prefetch-0", threads=12,
                     reason="a thread pool of 12 so the waiting calls run at once",
                     predicted_rate=61.5),
    )
    pipeline = PipelinePlan(StageRef(at, 53, "prefetch"), settings, observed_rate=33.0,
                            predicted_rate=61.5, measured_rate_before=33.2,
                            measured_rate_after=58.1 if kept else 33.9)
    plan = Plan(script=script, pipelines=(pipeline,) if kept else (),
                rejected=() if kept else (pipeline,))
    return profile, diagnoses, plan


#: The torch case's loader: 2 workers, batches of 8, 100 batches an iteration.
LOADER_LINE = SourceLocation("train.py", 40)
#: What the torch case's first transform raised.
CROP_ERROR = "ValueError: crop size (64, 64) larger than image (32, 32)"


def torch_pipeline(payload: str = "") -> Pipeline:
    """A DataLoader over object storage: each sample waits 20 ms on a GET, 2 workers.

    Two iterations of a non-persistent loader: each worker index appears
    twice, and worker 1 of the second grows 180 MB (copy-on-read). The
    first transform raised in worker 1; ``payload`` is planted in its error.
    """
    profile = loader_profile(
        (0.020, 0.0005),
        (("RandomResizedCrop", 0.004, 0.004, True), ("ToTensor", 0.001, 0.001, False)),
        num_workers=2, wait_s=9.5, step_s=1.0,
    )
    pipeline = profile.pipelines[0]
    error = f"{CROP_ERROR}{payload}"
    stages = tuple(
        dataclasses.replace(s, error=error) if s.id == "transform_0" else s
        for s in pipeline.stages
    )
    mb = 1_000_000
    workers = (
        WorkerStats(0, 4101, 200, 400 * mb, 410 * mb, 405 * mb),
        WorkerStats(1, 4102, 200, 400 * mb, 412 * mb, 409 * mb),
        WorkerStats(0, 4201, 200, 402 * mb, 415 * mb, 414 * mb),
        WorkerStats(1, 4202, 200, 402 * mb, 582 * mb, 580 * mb),
    )
    notes = (f"worker 1 (pid 4202) raised in transform_0: {error}", "the last batch was partial")
    return dataclasses.replace(pipeline, stages=stages, workers=workers, notes=notes)


def torch_network(payload: str = "") -> NetworkRequests:
    """800 GETs of 12 kB to one host (``payload`` planted in its name); 3 refused at 6 in flight."""
    return NetworkRequests(
        requests=800, bytes_received=800 * 12_000, busy_s=9.0,
        latency_mean_s=0.021, latency_p50_s=0.02, latency_p90_s=0.025, in_flight_max=6,
        hosts=(f"bucket.s3.local:9000{payload}",), statuses={"200": 797, "503": 3},
        refused=3, in_flight_at_first_refusal=6, failures=1,
        first_failure="ConnectionResetError: connection reset by peer",
        available_bps=100e6, probe_latency_s=0.019,
        probe_basis="replayed a 12 kB GET from bucket.s3.local 40 times, 4 at once at best",
    )


def torch_diagnosis() -> Diagnosis:
    """The pool is the bottleneck (latency): fetch waits on its GETs; more workers would help.

    Per batch of 8: fetch 160 ms wall (4 ms CPU), the crop 32 ms, ToTensor
    8 ms, collate 1.6 ms: 202 ms on one worker, so 2 workers give 9.92/s.
    """
    def member(sid: str, kind: str, op: str, cpu: float, wall: float, visits: float,
               resource: str) -> StageAnalysis:
        return StageAnalysis(sid, kind, op, visits, cpu, wall, 2, 2 / wall, 1 - cpu / wall,
                             resource, LOADER_LINE, pool="workers")

    bounds = (
        Bound("workers at 2 workers", "stage", 9.92, "202 ms wall per batch, 77% waiting",
              "workers"),
        Bound("CPU (2 cores)", "cpu", 43.9, "2 cores / 45.6 ms"),
        Bound("consumer", "consumer", 100.0, "10 ms per step"),
        Bound("network", "network", 1040.0, "100 MB/s / 96 kB per batch"),
    )
    analyses = (
        member("fetch", "source", "__getitem__", 0.004, 0.16, 8.0, "latency"),
        member("transform_0", "map", "RandomResizedCrop", 0.032, 0.032, 8.0, "cpu"),
        member("transform_1", "map", "ToTensor", 0.008, 0.008, 8.0, "none"),
        member("collate", "batch", "default_collate", 0.0016, 0.0016, 1.0, "none"),
        StageAnalysis("workers", "workers", "DataLoader", 1.0, 0.0456, 0.2016, 2, 9.92, 0.77,
                      "latency", LOADER_LINE),
    )
    recommendation = Recommendation(
        title="Use 5 DataLoader workers", stage_id="workers", source=LOADER_LINE,
        old="num_workers=2", new="num_workers=5", predicted_rate=24.8, speedup=2.6,
        reason="fetch waits 98% of its time; the server refused requests beyond 5 in flight",
    )
    return Diagnosis(
        pipeline_id="loader-0", observed_rate=9.5, predicted_rate=9.92, bottleneck=bounds[0],
        bottleneck_kind="latency", bottleneck_stage="workers", input_bound=True,
        stall_share=0.9, rate_if_fixed=24.8,
        summary="workers (workers at train.py:40) is the bottleneck: it waits 77% of its time "
        "(latency). Inside its workers, fetch (__getitem__) takes 79% of the time.",
        stages=analyses, bounds=bounds, what_ifs=(), recommendations=(recommendation,),
    )


def torch_case(payload: str = "") -> Case:
    """A torch run reading over the network: worker pool, worker memory, requests, an error.

    ``payload`` is planted in the stage's error and the host's name.
    """
    profile = sample_profile(samples=300, command=("python", "train.py"), framework="torch",
                             framework_version="2.13.0")
    profile = dataclasses.replace(
        profile, pipelines=(torch_pipeline(payload),), network=torch_network(payload), threads=()
    )
    return profile, (torch_diagnosis(),)
