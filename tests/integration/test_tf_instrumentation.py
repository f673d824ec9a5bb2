"""The tf.data hooks in-process: structure as written and as run, restoration."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PIPELINES

tf = pytest.importorskip("tensorflow")

from plumber.analyzers.diagnose import diagnose_all  # noqa: E402
from plumber.measure.runbounds import RunBounds  # noqa: E402
from plumber.records.profile import Profile  # noqa: E402
from plumber.tf.hooks import TfHooks  # noqa: E402
from plumber.tf.pipelines import build_pipelines  # noqa: E402

pytestmark = pytest.mark.slow


def test_hooks_restore_every_patched_attribute_on_exit():
    from tensorflow.python.data.ops import dataset_ops, iterator_ops

    before = (
        dataset_ops.DatasetV2.__dict__["__init__"],
        iterator_ops.OwnedIterator.__dict__["__init__"],
        iterator_ops.OwnedIterator.__dict__["_next_internal"],
        iterator_ops.OwnedIterator.__dict__.get("__del__"),
    )
    with pytest.raises(ValueError), TfHooks():
        for _ in tf.data.Dataset.range(3):
            raise ValueError("script failed")
    after = (
        dataset_ops.DatasetV2.__dict__["__init__"],
        iterator_ops.OwnedIterator.__dict__["__init__"],
        iterator_ops.OwnedIterator.__dict__["_next_internal"],
        iterator_ops.OwnedIterator.__dict__.get("__del__"),
    )
    assert before == after


def test_interleave_bodies_and_zip_inputs_appear_in_the_profiled_graph(tmp_path):
    files = []
    for i in range(4):
        path = tmp_path / f"part{i}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for j in range(200):
                writer.write(f"record {i} {j}".encode())
        files.append(str(path))
    with TfHooks() as hooks:
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=2, num_parallel_calls=2
        )
        lengths = records.map(tf.strings.length)
        dataset = tf.data.Dataset.zip((lengths, tf.data.Dataset.range(10_000))).batch(8)
        total = sum(int(tf.reduce_sum(a)) for a, _ in dataset)
    assert total > 0
    (pipeline,) = build_pipelines(hooks, cpu_probe_s=0.5)
    by_id = {s.id: s for s in pipeline.stages}
    assert by_id["zip-0"].inputs == ("map-0", "source-1")
    nested = [s for s in pipeline.stages if s.nested_in == "interleave-0"]
    assert nested, "the interleave body must appear as nested stages"
    records_read = sum(s.stats.elements for s in nested if s.op.startswith("TFRecord"))
    assert records_read == pytest.approx(800, rel=0.05)
    assert by_id["interleave-0"].source.file == __file__
    assert by_id["map-0"].stats.cpu_time_s is not None
    assert pipeline.consumer.steps == 100
    assert any(not s.written for s in pipeline.stages), "TF's injected prefetch is shown"


def test_how_each_stages_elements_compress_is_sampled_unless_the_probe_is_off():
    with TfHooks() as hooks:
        dataset = tf.data.Dataset.range(64).map(lambda x: tf.fill([1024], x)).batch(8)
        for _ in dataset:
            pass
    (pipeline,) = build_pipelines(hooks, cpu_probe_s=1.0)
    batched = pipeline.stage("batch-0").stats.compression
    assert batched is not None and batched.elements == 4
    # Batches of 8 rows of 1024 equal int64s: 64 kB each, which compress to a sliver.
    assert batched.raw_bytes == 4 * 8 * 1024 * 8
    assert batched.compressed_bytes < batched.raw_bytes / 10
    with TfHooks() as hooks:
        dataset = tf.data.Dataset.range(64).map(lambda x: tf.fill([1024], x)).batch(8)
        for _ in dataset:
            pass
    (unprobed,) = build_pipelines(hooks, cpu_probe_s=0)
    assert all(s.stats is None or s.stats.compression is None for s in unprobed.stages)


def test_stage_source_lines_point_at_the_users_calls(tmp_path):
    with TfHooks() as hooks:
        dataset = tf.data.Dataset.range(100)
        dataset = dataset.map(lambda x: x + 1)  # the map's line
        map_line = _line_of("the map's line")
        for _ in dataset:
            pass
    (pipeline,) = build_pipelines(hooks, cpu_probe_s=0)
    assert pipeline.stage("map-0").source.line == map_line
    assert Path(pipeline.stage("map-0").source.file).name == Path(__file__).name


def test_step_bound_stops_the_loop_with_a_signal_the_script_cannot_swallow():
    from plumber.measure.runbounds import BoundReached

    seen = 0
    with pytest.raises(BoundReached), TfHooks(RunBounds(steps=25)):
        try:
            for _ in tf.data.Dataset.range(1000):
                seen += 1
        except Exception:  # a script's broad handler must not hide the stop
            pytest.fail("BoundReached was swallowed")
    assert seen == 25


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "_line_of" not in line)


def test_consumer_records_how_much_its_wait_and_step_times_vary():
    import time

    with TfHooks() as hooks:
        dataset = tf.data.Dataset.range(40)
        for i, _ in enumerate(dataset):
            time.sleep(0.002 if i % 2 else 0.012)  # steps of 2 and 12 ms: SD 5 ms
    (pipeline,) = build_pipelines(hooks, cpu_probe_s=0.0)
    consumer = pipeline.consumer
    assert 0.003 < consumer.step_sd_s < 0.015  # sleeps overshoot on a busy machine
    assert consumer.wait_sd_s is not None and consumer.wait_sd_s >= 0.0


def test_the_loops_wait_is_timed_over_the_steady_window_apart_from_start_up():
    import time

    def slow_first(x):
        if x == 0:
            time.sleep(0.5)  # a pipeline that takes half a second to deliver anything
        return x

    with TfHooks() as hooks:
        dataset = tf.data.Dataset.range(30).map(
            lambda x: tf.numpy_function(slow_first, [x], tf.int64))
        for _ in dataset:
            time.sleep(0.01)
    (pipeline,) = build_pipelines(hooks, cpu_probe_s=0.0)
    consumer = pipeline.consumer
    # THEN the half-second start-up is in the whole iteration's wait, not the window's
    assert consumer.wait_s >= 0.5
    assert consumer.steady_wait_s is not None and consumer.steady_wait_s < 0.2
    assert consumer.stall_share < 0.5 < consumer.run_stall_share


@pytest.mark.parametrize("root", ["options", "take", "assert"])
def test_a_pass_through_root_leaves_the_cpu_probe_on_and_the_heavy_map_named(plumber_cli, root):
    run = plumber_cli("profile", "-o", "out", PIPELINES / "pass_through_root.py",
                      "--", "--root", root)
    assert run.returncode == 0, run.stderr[-3000:]
    profile = Profile.load(run.profile_path)
    (pipeline,) = profile.pipelines
    assert any(n.startswith("per-stage CPU time measured") for n in pipeline.notes)
    assert not any("not measured" in n for n in pipeline.notes)
    heavy = pipeline.stage("map-0")
    assert heavy.stats is not None and heavy.stats.cpu_time_s > 0
    assert pipeline.stage(pipeline.root).stats is not None
    (diagnosis,) = diagnose_all(profile)
    assert diagnosis.bottleneck_stage == "map-0"
    assert "pass_through_root.py:29" in run.stderr
