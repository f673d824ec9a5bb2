"""The offload model: cut point, workers, rate, mode, and when it is proposed at all."""

from __future__ import annotations

import dataclasses
import html
import math
import re

import pytest

from plumber.analyzers import offload as model
from plumber.analyzers.diagnose import diagnose, scene
from plumber.analyzers.stages import RECEIVE_BPS_PER_CORE
from plumber.records.profile import Compression, NetworkRequests, Profile, TimeSeries
from tests.unit.synthetic_profiles import loader_profile, make_profile, stage

BUSY = TimeSeries(t=(0, 1, 2), process_cpu_percent=(195,) * 3)
IDLE = TimeSeries(t=(0, 1, 2), process_cpu_percent=(60,) * 3)


def cpu_bound(*, stateful_decode: bool = False, resources: TimeSeries = BUSY,
              step_s: float = 1.0, batch_bytes: int = 100_000) -> Profile:
    """100 batches of 10: source -> decode map (8 ms CPU per element, parallelism 2) -> batch.

    Two cores busy, so the pipeline needs 80 ms of CPU per batch: 25 batches/s;
    the step alone would take 100 batches/s (``step_s`` over 100 steps).
    """
    knobs = {"stateful": True} if stateful_decode else {}
    return make_profile(
        stage("source", "source", 1000, 0.1, op="RangeDataset", line=10, bytes_per_element=8),
        stage("decode", "map", 1000, 8.0, parallelism=2, knobs=knobs, line=11,
              bytes_per_element=10_000),
        stage("batch", "batch", 100, 0.1, line=12, bytes_per_element=batch_bytes),
        wait_s=3.0, step_s=step_s, resources=resources,
    )


def test_a_cpu_bound_pipeline_is_cut_at_the_root_with_the_workers_that_reach_the_step():
    chosen = model.offload(scene(cpu_bound(), cpu_bound().pipelines[0]))
    assert chosen is not None
    assert chosen.cut.id == "batch"
    assert set(chosen.moved) == {"source", "decode", "batch"}
    # 82 ms of CPU per batch move; one 2-core worker gives 2 / 0.082 = 24.4 batches/s.
    assert chosen.rates[0] == pytest.approx(2 / 0.082)
    # The step takes 100 batches/s: 5 workers reach it, 4 do not.
    assert chosen.workers == 5
    assert chosen.predicted_rate == pytest.approx(100.0)
    assert chosen.limit == "the training step"
    assert chosen.processing_mode == model.DISTRIBUTED_EPOCH
    assert chosen.max_outstanding_requests == 2 * 5
    assert chosen.bandwidth_basis == "assumed, not measured"
    assert chosen.bandwidth_bps == model.ASSUMED_BPS


def test_of_cuts_as_good_the_one_sending_fewest_elements_across_wins():
    profile = make_profile(
        stage("source", "source", 1000, 0.0, op="RangeDataset", line=10, bytes_per_element=8),
        stage("decode", "map", 1000, 8.0, parallelism=2, line=11, bytes_per_element=8),
        stage("batch", "batch", 100, 0.0, line=12, bytes_per_element=80),
        wait_s=3.0, step_s=1.0, resources=BUSY,
    )
    cut_here = scene(profile, profile.pipelines[0])
    after_decode = model._option(cut_here, profile.pipelines[0].stage("decode"), False)
    after_batch = model._option(cut_here, profile.pipelines[0].stage("batch"), False)
    assert after_decode is not None and after_batch is not None
    assert after_decode.workers == after_batch.workers
    assert after_decode.local_cpu_s == after_batch.local_cpu_s
    # After the decode, 10 elements per batch would cross (each a request); after the batch, 1.
    assert model.offload(cut_here).cut.id == "batch"


def test_a_stage_computing_on_every_core_counts_as_cpu_bound():
    profile = make_profile(
        stage("source", "source", 1000, 0.1, op="RangeDataset", line=10),
        stage("decode", "map", 1000, 10.0, 8.0, parallelism=2, line=11),
        stage("batch", "batch", 100, 0.1, line=12),
        wait_s=3.0, step_s=1.0, resources=BUSY,
    )
    model_scene = scene(profile, profile.pipelines[0])
    # decode delivers 2 calls / 100 ms of wall per batch = 20/s, below the cores' 24.4/s.
    assert min(model_scene.bounds, key=lambda b: b.rate).stage_id == "decode"
    assert model.cores_all_busy(model_scene)
    assert model.offload(model_scene) is not None


def test_the_bytes_crossing_at_the_cut_bound_the_rate_by_the_probed_bandwidth():
    profile = dataclasses.replace(cpu_bound(batch_bytes=2_000_000), network=NetworkRequests(
        requests=10, bytes_received=1000, busy_s=1.0, latency_mean_s=0.01, latency_p50_s=0.01,
        latency_p90_s=0.01, in_flight_max=1, available_bps=100e6))
    chosen = model.offload(scene(profile, profile.pipelines[0]))
    assert chosen is not None and chosen.bandwidth_basis == "probed"
    # 100 MB/s over 2 MB per batch: 50 batches/s, below the step's 100; cutting lower
    # sends 10 kB x 10 = 100 kB per batch instead, but leaves the batch stage here.
    assert chosen.bytes_per_root is not None
    assert chosen.predicted_rate == pytest.approx(min(100e6 / chosen.bytes_per_root, 100.0))
    assert chosen.cut.id == "decode"



def test_a_link_rate_the_user_gave_wins_over_the_probe_and_bounds_the_workers():
    probed = dataclasses.replace(cpu_bound(batch_bytes=2_000_000), network=NetworkRequests(
        requests=10, bytes_received=1000, busy_s=1.0, latency_mean_s=0.01, latency_p50_s=0.01,
        latency_p90_s=0.01, in_flight_max=1, available_bps=1e12))
    profile = dataclasses.replace(
        probed, machine=dataclasses.replace(probed.machine, link_bps=60e6))
    chosen = model.offload(scene(profile, profile.pipelines[0]))
    assert chosen is not None and chosen.bandwidth_basis == "given with --link-bandwidth"
    assert chosen.bandwidth_bps == 60e6
    # 60 MB/s over 2 MB per batch after the batch: 30/s, under the step's 100/s. Cut
    # below the batch, 10 elements of 10 kB cross instead (100 kB per batch: 600/s),
    # so the network no longer holds the rate and the step does.
    assert chosen.cut.id == "decode" and chosen.limit == "the training step"
    assert ("(60 MB/s given with --link-bandwidth; counted uncompressed, since how they "
            "compress was not sampled)") in model.reason(chosen)


def compressed(profile: Profile, stage_id: str, sample: Compression) -> Profile:
    """``profile`` with ``sample`` as how the elements of ``stage_id`` compressed."""
    [pipeline] = profile.pipelines
    stages = tuple(
        dataclasses.replace(s, stats=dataclasses.replace(s.stats, compression=sample))
        if s.id == stage_id else s for s in pipeline.stages)
    return dataclasses.replace(profile, pipelines=(dataclasses.replace(pipeline, stages=stages),))


def test_elements_that_compress_cross_a_slow_link_at_their_compressed_size():
    slow = cpu_bound(batch_bytes=2_000_000)
    slow = dataclasses.replace(slow, machine=dataclasses.replace(slow.machine, link_bps=60e6))
    # A batch of 2 MB compresses to 200 kB: 300/s over the link, above the step's 100/s.
    sample = Compression(elements=4, raw_bytes=8_000_000, compressed_bytes=800_000,
                         compress_cpu_s=0.004, uncompress_cpu_s=0.002)
    profile = compressed(slow, "batch", sample)
    cut_batch = model._option(scene(profile, profile.pipelines[0]),
                              profile.pipelines[0].stage("batch"), False)
    assert cut_batch is not None
    assert cut_batch.bytes_per_root == pytest.approx(2e6)
    assert cut_batch.bytes_sent_per_root == pytest.approx(2e5)
    assert cut_batch.limit == "the training step"
    # Compressing costs the workers 1 ms per batch, uncompressing costs this machine 0.5 ms.
    plain = model._option(scene(slow, slow.pipelines[0]), slow.pipelines[0].stage("batch"), False)
    assert cut_batch.remote_cpu_s == pytest.approx(plain.remote_cpu_s + 0.001)
    assert cut_batch.local_cpu_s == pytest.approx(
        plain.local_cpu_s + 0.0005 - (2e6 - 2e5) / RECEIVE_BPS_PER_CORE)
    assert "2 MB per root element leave the cut and 200 kB cross the network" in \
        model.reason(cut_batch)
    assert "sampled on 4 elements" in model.reason(cut_batch)


def test_elements_that_grow_when_compressed_count_the_bytes_that_cross():
    profile = compressed(cpu_bound(batch_bytes=100), "batch",
                         Compression(4, 400, 1000, 0.0, 0.0))
    cut = model._option(scene(profile, profile.pipelines[0]),
                        profile.pipelines[0].stage("batch"), False)
    assert cut.bytes_sent_per_root == pytest.approx(250.0)


def test_a_sample_without_bytes_is_not_used():
    profile = compressed(cpu_bound(), "batch", Compression(4, 0, 100, 0.001, 0.001))
    cut = model._option(scene(profile, profile.pipelines[0]),
                        profile.pipelines[0].stage("batch"), False)
    assert cut.compression is None and cut.bytes_sent_per_root == cut.bytes_per_root

def test_a_heavy_stage_that_calls_python_is_not_moved_and_the_row_says_why():
    profile = cpu_bound(stateful_decode=True)
    # Every cut but the source alone moves the decode map; the source has no CPU to spare.
    assert model.offload(scene(profile, profile.pipelines[0])) is None
    row = model.offload_what_if(scene(profile, profile.pipelines[0]))
    assert row is not None and not row.feasible
    assert row.reason.startswith("Not proposed: decode (map at train.py:11) calls Python")
    assert "py_function" in row.reason
    assert not [r for r in diagnose(profile).recommendations if "tf.data service" in r.title]


def test_a_stateful_stage_above_the_heavy_one_moves_what_is_below_it():
    profile = make_profile(
        stage("source", "source", 1000, 0.1, op="TensorSliceDataset", line=10),
        stage("decode", "map", 1000, 8.0, parallelism=2, line=11, bytes_per_element=10_000),
        stage("label", "map", 1000, 0.1, knobs={"stateful": True}, line=12),
        stage("batch", "batch", 100, 0.1, line=13, bytes_per_element=100_000),
        wait_s=3.0, step_s=1.0, resources=BUSY,
    )
    chosen = model.offload(scene(profile, profile.pipelines[0]))
    assert chosen is not None
    assert chosen.cut.id == "decode"
    assert any("label" in k for k in chosen.kept)
    assert "Not moved: label" in model.reason(chosen)


def test_nothing_is_offloaded_while_cores_are_idle_or_the_step_binds():
    idle = cpu_bound(resources=IDLE)
    assert model.offload(scene(idle, idle.pipelines[0])) is None
    step_bound = cpu_bound(step_s=10.0)  # 10 steps/s, below the pipeline's 25/s
    assert model.offload(scene(step_bound, step_bound.pipelines[0])) is None


def test_an_unsplittable_source_is_read_in_parallel_epochs():
    profile = make_profile(
        stage("source", "source", 1000, 0.1, op="SqlDataset", line=10),
        stage("decode", "map", 1000, 8.0, parallelism=2, line=11),
        wait_s=3.0, step_s=1.0, steps=1000, resources=BUSY,
    )
    chosen = model.offload(scene(profile, profile.pipelines[0]))
    assert chosen is not None and chosen.processing_mode == model.PARALLEL_EPOCHS
    assert "once per worker" in model.reason(chosen)


def test_outstanding_requests_fit_the_memory_share():
    profile = make_profile(
        stage("source", "source", 1000, 0.1, op="RangeDataset", line=10),
        stage("decode", "map", 1000, 8.0, parallelism=2, line=11,
              bytes_per_element=2_000_000),
        wait_s=3.0, step_s=1.0, steps=1000, resources=BUSY, memory=20_000_000,
    )
    chosen = model.offload(scene(profile, profile.pipelines[0]))
    assert chosen is not None and chosen.cut.id == "decode"
    # A quarter of the memory budget (half of 20 MB) is 2.5 MB: one 2 MB element at a time.
    assert chosen.workers > 1 and chosen.max_outstanding_requests == 1


def test_the_diagnosis_lists_the_offload_and_recommends_the_distribute_edit():
    diagnosis = diagnose(cpu_bound())
    row = next(w for w in diagnosis.what_ifs if w.knob == "data_service")
    assert row.value == "5" and row.stage_id == "batch"
    assert "distributed_epoch" in row.change
    advice = next(r for r in diagnosis.recommendations if r.stage_id == "batch"
                  and "tf.data service" in r.title)
    assert advice.old == ".batch(...)"
    assert 'distribute(processing_mode="distributed_epoch", service=SERVICE, ' \
           "max_outstanding_requests=10)" in advice.new
    assert "plumber run --plan plan.json --data-service" in advice.reason
    assert advice.source is not None and advice.source.line == 12


def test_the_report_shows_the_offload_row_and_its_edit():
    from plumber.reports.html import render_html

    profile = cpu_bound()
    diagnosis = diagnose(profile)
    row = next(w for w in diagnosis.what_ifs if w.knob == "data_service")
    page = render_html(profile, [diagnosis])
    what_ifs = seen(page[page.index("What if</h3>"):page.index("About this pipeline")])
    assert "below it on 5 tf.data service worker(s) (distributed_epoch) 100/s 4×" in what_ifs
    assert row.reason in what_ifs
    recommendations = seen(page[page.index('<ol class="recs">'):page.index("</ol>")])
    assert ("Offload batch and the stages below it to 5 tf.data service workers on other hosts "
            "predicted 100/s 4× faster train.py:12 .batch(...) → .batch(...).apply(tf.data."
            "experimental.service.distribute(processing_mode=\"distributed_epoch\", "
            "service=SERVICE, max_outstanding_requests=10))") in recommendations


def seen(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities read, blanks folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", fragment)).split())


def test_a_cut_a_library_built_says_it_is_placed_by_the_plan():
    profile = cpu_bound()
    (pipeline,) = profile.pipelines
    built = dataclasses.replace(pipeline.stage("batch"), source=dataclasses.replace(
        pipeline.stage("batch").source, built_by="keras.utils.image_dataset_from_directory"))
    profile = dataclasses.replace(profile, pipelines=(dataclasses.replace(
        pipeline, stages=tuple(built if s.id == "batch" else s for s in pipeline.stages)),))
    advice = next(r for r in diagnose(profile).recommendations if "tf.data service" in r.title)
    assert advice.old == "keras image_dataset_from_directory(...)"
    assert "no line of yours builds it" in advice.new


def test_a_dataloader_names_a_ray_data_actor_pool_with_a_sketch():
    profile = dataclasses.replace(
        loader_profile((0.02, 0.02), (("Resize", 0.01, 0.01, False),), num_workers=2,
                       wait_s=8.0, step_s=0.5),
        resources=BUSY)
    diagnosis = diagnose(profile)
    row = next(w for w in diagnosis.what_ifs if w.knob == "ray_data")
    assert "Ray Data actor pool" in row.change and int(row.value) >= 1
    advice = next(r for r in diagnosis.recommendations if "Ray Data" in r.title)
    assert advice.old == "DataLoader(dataset, ...)"
    # One actor per core of the workers: 2 cores each, as this machine.
    assert f"map_batches(Samples, fn_constructor_args=(dataset,), concurrency=" \
           f"{2 * int(row.value)})" in advice.new and "\n" not in advice.new
    assert "iter_torch_batches" in advice.new
    assert "Samples is a class" in advice.reason
    assert math.isfinite(advice.predicted_rate) and advice.predicted_rate > diagnosis.observed_rate
    assert "class Samples:" in advice.sketch
    assert f"concurrency={2 * int(row.value)})" in advice.sketch
    assert f"# {row.value} worker host(s) of 2 cores: one actor per core" in advice.sketch
    assert "iter_torch_batches(batch_size=8)" in advice.sketch


@pytest.mark.parametrize("sampler, ids", [
    ("SequentialSampler", "ray.data.range(len(dataset)).map_batches("),
    ("RandomSampler", "ray.data.range(len(dataset)).random_shuffle().map_batches("),
    ("WeightedRandomSampler",
     'ray.data.from_items([{"id": int(i)} for i in loader.sampler]).map_batches('),
])
def test_the_ray_data_sketch_reads_the_ids_in_the_order_of_the_loaders_sampler(sampler, ids):
    profile = dataclasses.replace(
        loader_profile((0.02, 0.02), (("Resize", 0.01, 0.01, False),), num_workers=2,
                       wait_s=8.0, step_s=0.5),
        resources=BUSY)
    [pipeline] = profile.pipelines
    stages = tuple(dataclasses.replace(s, knobs={**s.knobs, "sampler": sampler})
                   if s.kind == "workers" else s for s in pipeline.stages)
    profile = dataclasses.replace(
        profile, pipelines=(dataclasses.replace(pipeline, stages=stages),))
    advice = next(r for r in diagnose(profile).recommendations if "Ray Data" in r.title)
    assert ids in advice.sketch
    assert f"order of the loader's {sampler}, drawn anew each epoch" in advice.sketch
    assert ("leave one free" in advice.sketch) == (sampler == "RandomSampler")
    compile(advice.sketch, "sketch", "exec")


def test_the_report_shows_the_ray_data_sketch_folded():
    from plumber.reports.html import render_html

    profile = dataclasses.replace(
        loader_profile((0.02, 0.02), (("Resize", 0.01, 0.01, False),), num_workers=2,
                       wait_s=8.0, step_s=0.5),
        resources=BUSY)
    page = render_html(profile, (diagnose(profile),))
    assert '<details class="rec-sketch"><summary>Code sketch (not applied by plumber)' in page
    assert 'fields = default_collate([self.dataset[int(i)] for i in batch["id"]])' in \
        html.unescape(page)
