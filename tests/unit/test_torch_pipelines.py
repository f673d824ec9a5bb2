"""Merging the stats of the processes that ran a DataLoader's chain into its Pipeline record."""

from __future__ import annotations

import math

from plumber.records.profile import Profile, SourceLocation
from plumber.torch.pipelines import NO_STATS, NOT_CALLED, LoaderSummary, build_pipeline
from plumber.torch.workerside import StageCounts, WorkerSnapshot

SOURCE = SourceLocation("/work/train.py", 12, "main", 0)
KNOBS = {"num_workers": 2, "parallelism": 2, "start_method": "fork"}


def summary(**changes) -> LoaderSummary:
    fields = dict(
        source=SOURCE, knobs=KNOBS, fetch_op="__getitem__", collate_op="default_collate",
        transforms=(("RandomResizedCrop", True), ("ToTensor", False)),
        steps=10, wait_s=2.0, step_s=1.0, element_spec="Tensor[8, 3, 8, 8] float32",
    )
    fields.update(changes)
    return LoaderSummary(**fields)


def worker_file(index: int, *, fetch=(40, 1.0, 0.1, 0, 0), crop=(40, 2.0, 1.5, 400, 4000),
                tensor=(40, 0.5, 0.4, 1600, 400), collate=(5, 0.1, 0.1, 1700, 1600), **extra):
    """A worker's stats file as JSON data (what :class:`StatsWriter` writes)."""
    snapshot = {
        "worker": index, "pid": 100 + index, "final": True, "batches": 5, "samples": 40,
        "stages": {"fetch": list(fetch), "transform_0": list(crop),
                   "transform_1": list(tensor), "collate": list(collate)},
        "errors": {}, "transforms": [["RandomResizedCrop", True], ["ToTensor", False]],
        "rss": [1000, 3000, 2500], "problem": None,
    }
    snapshot.update(extra)
    return snapshot


def worker(index: int, **changes) -> WorkerSnapshot:
    """A worker's stats, as the main process reads them back from its file."""
    return WorkerSnapshot.from_json(worker_file(index, **changes))


def test_stages_are_chained_and_nested_in_the_worker_pool():
    pipeline = build_pipeline("pipeline-0", summary(), [worker(0), worker(1)])
    assert [s.id for s in pipeline.stages] == [
        "workers", "fetch", "transform_0", "transform_1", "collate"]
    assert pipeline.root == "workers"
    assert pipeline.stage("workers").inputs == ()
    assert pipeline.stage("transform_0").inputs == ("fetch",)
    assert pipeline.stage("collate").inputs == ("transform_1",)
    assert {s.nested_in for s in pipeline.stages[1:]} == {"workers"}
    assert {s.source for s in pipeline.stages} == {SOURCE}
    kinds = [(s.kind, s.op) for s in pipeline.stages]
    assert kinds == [("workers", "DataLoader"), ("source", "__getitem__"),
                     ("map", "RandomResizedCrop"), ("map", "ToTensor"),
                     ("batch", "default_collate")]


def test_stats_are_summed_over_workers_and_the_pool_totals_its_chain():
    pipeline = build_pipeline("pipeline-0", summary(), [worker(0), worker(1)])
    crop = pipeline.stage("transform_0").stats
    assert crop.elements == 80 and math.isclose(crop.cpu_time_s, 3.0)
    assert crop.bytes_produced == 800 and crop.bytes_consumed == 8000
    assert crop.parallelism == 2
    pool = pipeline.stage("workers").stats
    assert pool.elements == 10
    assert math.isclose(pool.wall_time_s, 2 * (1.0 + 2.0 + 0.5 + 0.1))
    assert math.isclose(pool.cpu_time_s, 2 * (0.1 + 1.5 + 0.4 + 0.1))
    assert pool.bytes_produced == 3400


def test_fetch_produces_what_the_first_transform_consumed():
    pipeline = build_pipeline("pipeline-0", summary(), [worker(0)])
    assert pipeline.stage("fetch").stats.bytes_produced == 4000


def test_without_transforms_fetch_produces_what_collate_consumed():
    snapshot = worker_file(0)
    del snapshot["stages"]["transform_0"], snapshot["stages"]["transform_1"]
    snapshot["transforms"] = []
    pipeline = build_pipeline("pipeline-0", summary(transforms=()),
                              [WorkerSnapshot.from_json(snapshot)])
    assert [s.id for s in pipeline.stages] == ["workers", "fetch", "collate"]
    assert pipeline.stage("collate").inputs == ("fetch",)
    assert pipeline.stage("fetch").stats.bytes_produced == 1600


def test_transform_knobs_keep_index_and_random():
    pipeline = build_pipeline("pipeline-0", summary(), [worker(0)])
    assert pipeline.stage("transform_0").knobs == {"index": 0, "random": True}
    assert pipeline.stage("transform_1").knobs == {"index": 1}
    assert pipeline.stage("workers").knobs == KNOBS


def test_how_randomness_was_decided_is_the_stage_note():
    decided = summary(
        transforms=(("Preset", True, "random: Preset > Compose > RandomCrop: a random transform"),
                    ("to_tensor", False, "deterministic: no random call found in to_tensor")),
        fetch_random=True, fetch_note="random: reading the same sample 2 times gave different")
    pipeline = build_pipeline("pipeline-0", decided, [worker(0)])
    assert pipeline.stage("transform_0").knobs == {
        "index": 0, "random": True,
        "note": "random: Preset > Compose > RandomCrop: a random transform"}
    assert pipeline.stage("transform_1").knobs == {
        "index": 1, "note": "deterministic: no random call found in to_tensor"}
    assert pipeline.stage("fetch").knobs == {
        "random": True, "note": "random: reading the same sample 2 times gave different"}


def test_a_transform_only_the_workers_found_counts_as_random():
    pipeline = build_pipeline("pipeline-0", summary(transforms=()), [worker(0)])
    assert [s.op for s in pipeline.stages[2:4]] == ["RandomResizedCrop", "ToTensor"]
    knobs = pipeline.stage("transform_1").knobs
    assert knobs["random"] is True and knobs["note"].startswith("treated as random: found only")
    assert pipeline.stage("fetch").knobs == {}


def test_consumer_and_workers_are_recorded():
    pipeline = build_pipeline("pipeline-0", summary(), [worker(0), worker(1)])
    assert pipeline.consumer.source == "python_next"
    assert (pipeline.consumer.steps, pipeline.consumer.wait_s) == (10, 2.0)
    assert pipeline.duration_s == 3.0
    assert [(w.worker, w.pid, w.elements) for w in pipeline.workers] == [(0, 100, 40), (1, 101, 40)]
    assert pipeline.workers[0].rss_peak_bytes == 3000


def test_a_stage_that_raised_carries_the_error_and_the_pipeline_names_the_worker():
    failing = worker(1, errors={"transform_0": "ValueError: bad sample 7"})
    pipeline = build_pipeline("pipeline-0", summary(), [worker(0), failing])
    assert pipeline.stage("transform_0").error == "ValueError: bad sample 7"
    assert pipeline.stage("fetch").error is None
    assert pipeline.notes == ("worker 1 (pid 101) raised in transform_0: ValueError: bad sample 7",)


def test_main_process_stats_give_no_worker_entries():
    main = worker(-1, errors={"fetch": "OSError: gone"})
    pipeline = build_pipeline("pipeline-0", summary(knobs={"num_workers": 0}), [main])
    assert pipeline.workers == ()
    assert pipeline.stage("fetch").stats.parallelism == 1
    assert pipeline.notes == ("the main process (num_workers=0) raised in fetch: OSError: gone",)


def test_a_transform_never_called_through_the_attribute_is_unmeasured_not_zero():
    snapshot = worker_file(0)
    del snapshot["stages"]["transform_1"]
    pipeline = build_pipeline("pipeline-0", summary(), [WorkerSnapshot.from_json(snapshot)])
    tensor = pipeline.stage("transform_1")
    assert tensor.stats is None and tensor.unmeasured_reason == NOT_CALLED


def test_no_stats_at_all_leaves_every_stage_unmeasured():
    pipeline = build_pipeline("pipeline-0", summary(), [])
    assert all(s.stats is None for s in pipeline.stages)
    assert pipeline.stage("fetch").unmeasured_reason == NO_STATS


def test_transforms_only_workers_found_are_added():
    pipeline = build_pipeline("pipeline-0", summary(transforms=()), [worker(0)])
    assert pipeline.stage("transform_1").op == "ToTensor"


def test_pinned_memory_becomes_the_root():
    pipeline = build_pipeline("pipeline-0", summary(pin=StageCounts(10, 0.2, 0.1)), [worker(0)])
    assert pipeline.root == "pin_memory"
    pin = pipeline.stage("pin_memory")
    assert pin.inputs == ("workers",) and pin.kind == "pin_memory" and pin.nested_in is None


def test_the_record_round_trips_through_json():
    from plumber.records.profile import Machine, RunInfo

    pipeline = build_pipeline(
        "pipeline-0", summary(), [worker(0, errors={"fetch": "ValueError: x"}), worker(1)]
    )
    profile = Profile(run=RunInfo(("train.py",), "now", 1.0, 0, framework="torch"),
                      machine=Machine(2, 2.0, 1, 1), pipelines=(pipeline,))
    assert Profile.from_dict(profile.to_dict()) == profile
