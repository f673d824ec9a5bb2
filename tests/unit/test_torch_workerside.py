"""Per-stage timing of a DataLoader's chain in one process, with a stand-in fetcher (no torch)."""

from __future__ import annotations

import copy
import json
import pickle
import time

import pytest

from plumber.torch.workerside import (
    TIMED_EVERY,
    TIMED_FIRST,
    StageRecorder,
    StatsWriter,
    TimedTransform,
    WorkerSnapshot,
    instrument_fetcher,
    wrap_transforms,
)


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Compose:
    """Stands in for torchvision's Compose, which plumber knows by its module (no torch here)."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


Compose.__module__ = "torchvision.transforms.transforms"


class Busy:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, x):
        burn(self.seconds)
        return x


class Reject:
    def __call__(self, x):
        if x == 3:
            raise ValueError(f"bad sample {x}")
        return x


class Samples:
    """A map-style dataset that waits 20 ms per sample (a remote read), then transforms."""

    def __init__(self, transform):
        self.transform = transform

    def __getitem__(self, index):
        time.sleep(0.02)
        return self.transform(index)


class Fetcher:
    """Shaped like torch's _MapDatasetFetcher."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.auto_collation = True
        self.collate_fn = list

    def fetch(self, indices):
        return self.collate_fn([self.dataset[i] for i in indices])


def timed_fetcher(transforms, recorder):
    dataset = Samples(Compose(transforms))
    described, replaced = wrap_transforms(dataset)
    fetcher = Fetcher(dataset)
    instrument_fetcher(fetcher, recorder)
    return fetcher, described, replaced


def test_fetch_time_excludes_the_transforms_and_collate_nested_in_it():
    recorder = StageRecorder(0, 1)
    fetcher, described, _ = timed_fetcher([Busy(0.01), Busy(0.0)], recorder)
    assert fetcher.fetch([0, 1]) == [0, 1]
    assert described == (("Busy", False), ("Busy", False))
    fetch, heavy, light = (recorder.stages[k] for k in ("fetch", "transform_0", "transform_1"))
    assert fetch[0] == 2 and heavy[0] == 2 and recorder.stages["collate"][0] == 1
    assert heavy[2] >= 0.018  # CPU of two 10 ms burns
    assert fetch[1] >= 0.035 and fetch[2] < 0.015  # waiting: wall >> CPU, burns not included
    assert light[2] < heavy[2]
    assert recorder.batches == 1 and recorder.samples == 2


class Grow:
    """Returns bytes one longer than it was given (bytes are sized by their length)."""

    def __call__(self, x):
        return x + b"."


class Fresh:
    """Returns a new object of the same size; its input is another transform's output."""

    def __call__(self, x):
        return bytes(x)


class Bytes(Samples):
    def __getitem__(self, index):
        return self.transform(b"x" * (10 + index))


def test_each_transform_counts_the_bytes_it_takes_and_gives_along_a_chain():
    recorder = StageRecorder(0, 1)
    dataset = Bytes(Compose([Grow(), Grow(), Fresh()]))
    wrap_transforms(dataset)
    fetcher = Fetcher(dataset)
    instrument_fetcher(fetcher, recorder)
    assert fetcher.fetch([0, 5]) == [b"x" * 10 + b"..", b"x" * 15 + b".."]
    # Samples of 10 and 15 bytes: each Grow adds one per sample; Fresh keeps the size.
    sizes = {k: (recorder.stages[k].bytes_in, recorder.stages[k].bytes_out)
             for k in ("transform_0", "transform_1", "transform_2")}
    assert sizes == {"transform_0": (25, 27), "transform_1": (27, 29), "transform_2": (29, 29)}
    assert recorder.last_out is None  # the last output is not kept past the fetch


def test_after_its_first_calls_a_transform_is_timed_one_call_in_four_and_scaled():
    recorder = StageRecorder(0, 1)
    timed = []

    class Counted(Busy):
        def __call__(self, x):
            timed.append(recorder.times_next_call("transform_0"))
            return super().__call__(x)

    fetcher, _, _ = timed_fetcher([Counted(0.0002), Grow()], recorder)
    samples = TIMED_FIRST + 10 * TIMED_EVERY
    fetcher.dataset = Bytes(fetcher.dataset.transform)
    fetcher.fetch([0] * samples)
    assert timed[:TIMED_FIRST] == [True] * TIMED_FIRST
    assert sum(timed) == TIMED_FIRST + 10
    stages = recorder.stages
    assert stages["transform_0"].elements == samples and stages["transform_1"].elements == samples
    # Samples of 10 bytes grown to 11: scaled from the timed calls, the sums come out whole.
    assert (stages["transform_1"].bytes_in, stages["transform_1"].bytes_out) == (
        10 * samples, 11 * samples)
    # The burns: 0.2 ms of CPU each, about samples * 0.2 ms once scaled, none of it in fetch.
    assert stages["transform_0"].cpu_s == pytest.approx(samples * 0.0002, rel=0.5)
    assert stages["fetch"].cpu_s < stages["transform_0"].cpu_s


def test_a_failing_transform_is_blamed_not_the_fetch_around_it():
    recorder = StageRecorder(1, 1)
    errors = []
    recorder.on_error = lambda: errors.append(dict(recorder.errors))
    fetcher, _, _ = timed_fetcher([Busy(0.0), Reject()], recorder)
    with pytest.raises(ValueError, match="bad sample 3"):
        fetcher.fetch([2, 3])
    assert recorder.errors == {"transform_1": "ValueError: bad sample 3"}
    assert errors == [recorder.errors]  # flushed at once
    assert recorder.batches == 0


def test_a_failing_read_is_blamed_on_fetch():
    recorder = StageRecorder(0, 1)
    fetcher = Fetcher({})
    instrument_fetcher(fetcher, recorder)
    with pytest.raises(KeyError):
        fetcher.fetch([5])
    assert recorder.errors == {"fetch": "KeyError: 5"}


def test_outside_a_recorded_fetch_a_timed_transform_is_the_transform():
    recorder = StageRecorder(0, 1)
    timed = TimedTransform(lambda x: x + 1, "transform_0")
    assert timed(1) == 2
    assert recorder.stages == {}


def test_pickling_and_copying_give_back_the_users_transform():
    busy = Busy(0.5)
    assert isinstance(pickle.loads(pickle.dumps(TimedTransform(busy, "transform_0"))), Busy)
    assert isinstance(copy.deepcopy(TimedTransform(busy, "transform_0")), Busy)
    assert TimedTransform(busy, "transform_0").seconds == 0.5


def test_replaced_transforms_are_restored_and_not_wrapped_twice():
    compose = Compose([Busy(0.0), Reject()])
    original = compose.transforms
    dataset = Samples(compose)
    _, replaced = wrap_transforms(dataset)
    assert all(isinstance(t, TimedTransform) for t in compose.transforms)
    assert wrap_transforms(dataset)[1] is None
    replaced.restore()
    assert compose.transforms is original


def test_a_single_callable_transform_is_wrapped_and_restored():
    def double(x):
        return 2 * x

    dataset = Samples(double)
    described, replaced = wrap_transforms(dataset)
    assert described == (("double", False),)
    assert isinstance(dataset.transform, TimedTransform)
    replaced.restore()
    assert dataset.transform is double


def test_the_stats_file_holds_a_json_snapshot(tmp_path):
    recorder = StageRecorder(1, 42, rss_start=100)
    recorder.add("fetch", 3, 0.5, 0.1)
    writer = StatsWriter(recorder, tmp_path / "0-0-1-42.json", interval_s=60)
    writer.write(final=True)
    data = json.loads((tmp_path / "0-0-1-42.json").read_text())
    assert data["worker"] == 1 and data["final"] and data["stages"]["fetch"][:2] == [3, 0.5]
    assert data["rss"][0] == 100 and data["rss"][1] >= data["rss"][2] > 0
    assert not recorder.dirty


def test_a_snapshot_reads_back_from_its_json_as_it_was_taken():
    recorder = StageRecorder(0, 42, rss_start=100)
    recorder.add("fetch", 3, 0.5, 0.1, bytes_out=10, bytes_in=20)
    recorder.fail("fetch", ValueError("bad sample 7"))
    taken = recorder.snapshot(final=True, rss=300)
    assert WorkerSnapshot.from_json(json.loads(json.dumps(taken.to_json()))) == taken
    assert taken.stages["fetch"].bytes_in == 20 and taken.rss == (100, 300, 300)
