"""Kinds of written tf.data stages, read from real dataset objects."""

import pytest

tf = pytest.importorskip("tensorflow")

from plumber.tf.written import dataset_kind, read_written  # noqa: E402


def kinds(dataset) -> dict[str, str]:
    return {s.op: s.kind for s in read_written(dataset, lambda obj: None).walk()}


def test_an_unknown_op_that_reads_another_dataset_is_other_not_a_source():
    dataset = tf.data.Dataset.range(4).map(lambda x: x * 2)
    dataset = dataset.apply(tf.data.experimental.ignore_errors())
    assert kinds(dataset) == {"Range": "source", "Map": "map", "IgnoreErrors": "other"}
    assert dataset_kind(dataset) == "other"


def test_readers_and_the_random_dataset_stay_sources():
    assert dataset_kind(tf.data.Dataset.range(3)) == "source"
    assert dataset_kind(tf.data.Dataset.random(seed=1)) == "source"
    assert dataset_kind(tf.data.TFRecordDataset(["missing.tfrecord"])) == "source"


def test_the_kind_of_each_stage_agrees_with_its_object():
    dataset = tf.data.Dataset.range(8).scan(tf.constant(0, tf.int64), lambda s, x: (s + x, s))
    dataset = dataset.batch(2).apply(tf.data.experimental.ignore_errors()).prefetch(1)
    for stage in read_written(dataset, lambda obj: None).walk():
        assert dataset_kind(stage.dataset) == stage.kind, stage.op


@pytest.fixture(scope="module")
def service():
    """A dispatcher and one worker in this process (the written tree needs no reads)."""
    dispatcher = tf.data.experimental.service.DispatchServer()
    worker = tf.data.experimental.service.WorkerServer(tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher.target.removeprefix("grpc://")))
    yield dispatcher.target
    worker.stop()
    dispatcher.stop()


def test_a_service_read_is_a_source_with_what_distribute_was_given(service):
    sent = tf.data.Dataset.range(8).map(lambda x: x + 1).batch(2)
    read = sent.apply(tf.data.experimental.service.distribute(
        processing_mode="distributed_epoch", service=service, max_outstanding_requests=3))
    dataset = read.map(lambda x: x * 2).prefetch(1)
    remote = {}
    root = read_written(dataset, lambda obj: None, lambda obj: remote.get(id(obj)))
    (service_read,) = [s for s in root.walk() if s.op.startswith("DataService")]
    assert service_read.kind == "source" and service_read.remote is None
    assert service_read.knobs == {"random": True, "service": service,
                                  "processing_mode": "distributed_epoch",
                                  "max_outstanding_requests": 3}
    remote[id(read)] = sent
    root = read_written(dataset, lambda obj: None, lambda obj: remote.get(id(obj)))
    (service_read,) = [s for s in root.walk() if s.op.startswith("DataService")]
    assert [(s.id, s.op) for s in service_read.remote.walk()] == [
        ("source-0", "Range"), ("map-0", "Map"), ("batch-0", "BatchV2")]
    assert [s.id for s in root.walk()] == ["source-1", "map-1", "prefetch-0"], \
        "the stages sent to the service are numbered first, and not walked here"


def test_parallel_epochs_and_a_shared_job_are_read_back(service):
    read = tf.data.Dataset.range(4).apply(tf.data.experimental.service.distribute(
        processing_mode="parallel_epochs", service=service, job_name="shared"))
    knobs = [s.knobs for s in read_written(read, lambda obj: None).walk()
             if s.op.startswith("DataService")][0]
    assert knobs["processing_mode"] == "parallel_epochs"
    assert knobs["job_name"] == "shared" and knobs["max_outstanding_requests"] == -1
