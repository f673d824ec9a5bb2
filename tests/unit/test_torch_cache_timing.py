"""The transforms a ``CachedDataset`` runs itself are timed as their stages.

With a plan's cache in force (``plumber profile --plan``), the dataset's
transforms before the cache point run on a miss, and those after it are
replayed on every sample, from the cache's own lists, not through the
dataset's transform attribute where plumber puts its timing wrappers. They
went untimed, and their time into fetch.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torch.utils.data import Dataset  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from plumber.torch import workerside  # noqa: E402
from plumber.torch.cache import CachedDataset  # noqa: E402
from plumber.torch.workerside import (  # noqa: E402
    StageRecorder,
    TimedTransform,
    wrap_cached_transforms,
)


class Add:
    def __init__(self, amount: float) -> None:
        self.amount = amount

    def __call__(self, x):
        return x + self.amount


class Scale:
    def __call__(self, x):
        return x * 2


class Numbers(Dataset):
    """Four samples through ``transform`` (a Compose), or through each of ``transforms``."""

    def __init__(self, transform=None, transforms=None) -> None:
        self.transform = transform
        self.transforms = transforms

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        sample = torch.full((3,), float(index))
        if self.transform is not None:
            sample = self.transform(sample)
        for transform in self.transforms or ():
            sample = transform(sample)
        return sample, index


def chain():
    return [Add(1.0), Scale(), Add(3.0)]


def read_twice(dataset, recorder: StageRecorder) -> list:
    """Every sample, two epochs, inside a recorded fetch as a worker reads them."""
    workerside._current.recorder = recorder
    try:
        return [dataset[i] for _ in range(2) for i in range(len(dataset))]
    finally:
        workerside._current.recorder = None


@pytest.mark.parametrize("holder", ["compose", "list"])
def test_the_transforms_a_cache_runs_are_timed_as_their_stages(tmp_path, holder):
    def numbers():
        return (Numbers(transform=T.Compose(chain())) if holder == "compose"
                else Numbers(transforms=chain()))

    cached = CachedDataset(numbers(), upto=0, location=tmp_path / "cache")
    replaced = wrap_cached_transforms(cached)
    recorder = StageRecorder(-1, 0)
    samples = read_twice(cached, recorder)
    stages = recorder.stages
    # transform_0 runs on the 4 misses; the two after the cache point on all 8 reads
    assert {k: v.elements for k, v in stages.items()} == {
        "transform_0": 4, "transform_1": 8, "transform_2": 8}
    plain = numbers()
    assert all(torch.equal(s, plain[i][0]) and label == i
               for (s, label), i in zip(samples, [0, 1, 2, 3] * 2, strict=True))
    for each in replaced:
        each.restore()
    held = [getattr(h.holder, h.attribute) for h in cached.held_transforms()]
    assert held and not any(isinstance(t, TimedTransform) for items in held for t in items)


def test_a_cache_of_the_fetch_alone_times_every_replayed_transform(tmp_path):
    cached = CachedDataset(Numbers(transform=T.Compose(chain())), upto=-1,
                           location=tmp_path / "cache")
    wrap_cached_transforms(cached)
    recorder = StageRecorder(-1, 0)
    read_twice(cached, recorder)
    assert {k: v.elements for k, v in recorder.stages.items()} == {
        "transform_0": 8, "transform_1": 8, "transform_2": 8}


def test_a_dataset_without_a_cache_has_nothing_of_its_own_to_time():
    assert wrap_cached_transforms(Numbers(transform=T.Compose(chain()))) == []
