"""``plumber.torch.cache.CachedDataset`` on real PNG pipelines read through DataLoaders.

The datasets are defined at module level so spawned workers can import them.
Calls are counted with one file per call, since workers are separate processes.
"""

from __future__ import annotations

import gc
import pickle
import uuid
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")

from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from plumber.torch import cache as cache_module  # noqa: E402
from plumber.torch.cache import CachedDataset, transform_count  # noqa: E402

SAMPLES = 12
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def write_pngs(folder: Path, count: int = SAMPLES) -> Path:
    """``count`` small RGB PNGs of different sizes and contents."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(30 + i, 40 - i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def deterministic() -> list:
    return [T.Resize(24), T.CenterCrop(20), T.ToTensor(), T.Normalize(MEAN, STD)]


def augmented() -> T.Compose:
    """Deterministic decode-side transforms, then random augmentation (index 4 onwards)."""
    return T.Compose([*deterministic(), T.RandomHorizontalFlip(),
                      T.RandomResizedCrop(16, antialias=True)])


class PngFolder(Dataset):
    """PNG files decoded with PIL; each fetch leaves a file in ``calls`` when given."""

    def __init__(self, root: Path, transform=None, calls: Path | None = None) -> None:
        self.files = sorted(Path(root).glob("*.png"))
        self.transform = transform
        self.calls = calls

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        if self.calls is not None:
            (self.calls / f"{index}-{uuid.uuid4().hex}").touch()
        with Image.open(self.files[index]) as image:
            sample = image.convert("RGB")
        if self.transform is not None:
            sample = self.transform(sample)
        return sample, index


Pair = namedtuple("Pair", "label image")


class Labelled(Dataset):
    """Tensors in a dict or a named tuple, to check where replayed transforms go."""

    def __init__(self, transform, as_dict: bool) -> None:
        self.transform = transform
        self.as_dict = as_dict

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        image = self.transform(torch.full((2, 3), float(index)))
        if self.as_dict:
            return {"label": index, "views": [image, self.transform(torch.zeros(1))]}
        return Pair(index, image)


class Listed(Dataset):
    """Keeps a plain list of callables on ``transforms`` and applies them itself."""

    def __init__(self) -> None:
        self.transforms = [torch.neg, torch.exp, lambda t: t + torch.rand(1)]

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int):
        value = torch.tensor([float(index)])
        for transform in self.transforms:
            value = transform(value)
        return index, value


class Rescaling(Dataset):
    """Changes its transform's output before returning it."""

    def __init__(self) -> None:
        self.transform = T.Compose([T.Lambda(torch.neg), T.Lambda(torch.abs)])

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int):
        return self.transform(torch.tensor([float(index)])) * 2


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(3))


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> Path:
    return write_pngs(tmp_path_factory.mktemp("pngs"))


@pytest.fixture
def calls(tmp_path) -> Path:
    folder = tmp_path / "calls"
    folder.mkdir()
    return folder


def fetches(calls: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for path in calls.iterdir():
        index = int(path.name.split("-")[0])
        counts[index] = counts.get(index, 0) + 1
    return counts


def epoch(loader: DataLoader, seed: int | None = None) -> list[tuple[torch.Tensor, list[int]]]:
    if seed is not None:
        torch.manual_seed(seed)
    return [(images.clone(), labels.tolist()) for images, labels in loader]


def same_batches(a, b) -> bool:
    return len(a) == len(b) and all(
        la == lb and torch.equal(ia, ib) for (ia, la), (ib, lb) in zip(a, b, strict=True))


def test_the_fetch_and_transforms_before_the_cache_point_run_once_per_index(pngs, calls):
    cached = CachedDataset(PngFolder(pngs, augmented(), calls), upto=3)
    loader = DataLoader(cached, batch_size=4)
    first, second = epoch(loader), epoch(loader)
    assert fetches(calls) == {i: 1 for i in range(SAMPLES)}
    assert cached.cached_entries() == SAMPLES
    assert [labels for _, labels in first] == [labels for _, labels in second]
    assert first[0][0].shape == (4, 3, 16, 16)


def test_the_random_transforms_after_the_cache_point_still_vary_between_epochs(pngs):
    loader = DataLoader(CachedDataset(PngFolder(pngs, augmented()), upto=3), batch_size=4)
    first, second = epoch(loader), epoch(loader)
    assert not same_batches(first, second)


@pytest.mark.parametrize("workers, context", [(0, None), (2, "fork"), (2, "spawn")])
def test_cached_loader_yields_what_the_uncached_one_does(pngs, calls, workers, context):
    """With the same seed, random transforms after the cache draw the same numbers."""
    options = dict(batch_size=4, num_workers=workers, multiprocessing_context=context)
    plain = DataLoader(PngFolder(pngs, augmented()), **options)
    cached = DataLoader(CachedDataset(PngFolder(pngs, augmented(), calls), upto=3), **options)
    expected = [epoch(plain, seed) for seed in (1, 2)]
    assert same_batches(epoch(cached, 1), expected[0])
    assert same_batches(epoch(cached, 2), expected[1])
    assert fetches(calls) == {i: 1 for i in range(SAMPLES)}


def test_persistent_spawned_workers_share_the_cache_across_epochs(pngs, calls):
    dataset = CachedDataset(PngFolder(pngs, T.Compose(deterministic()), calls), upto=1)
    loader = DataLoader(dataset, batch_size=3, num_workers=2, persistent_workers=True,
                        multiprocessing_context="spawn")
    plain = epoch(DataLoader(PngFolder(pngs, T.Compose(deterministic())), batch_size=3))
    assert same_batches(epoch(loader), plain)
    assert same_batches(epoch(loader), plain)
    assert fetches(calls) == {i: 1 for i in range(SAMPLES)}


def test_caching_the_fetch_alone_replays_every_transform(pngs, calls):
    cached = CachedDataset(PngFolder(pngs, T.Compose(deterministic()), calls), upto=-1)
    plain = PngFolder(pngs, T.Compose(deterministic()))
    for _ in range(2):
        for i in range(SAMPLES):
            assert torch.equal(cached[i][0], plain[i][0])
    assert fetches(calls) == {i: 1 for i in range(SAMPLES)}
    assert isinstance(cached.dataset.transform, T.Compose)  # the user's dataset is untouched


def test_a_subset_is_cached_through_its_dataset(pngs, calls):
    subset = Subset(PngFolder(pngs, augmented(), calls), [5, 1, 7])
    cached = CachedDataset(subset, upto=2)
    assert transform_count(subset) == 6
    assert [cached[i][1] for i in range(3)] * 2 == [cached[i][1] for i in (0, 1, 2, 0, 1, 2)]
    assert fetches(calls) == {5: 1, 1: 1, 7: 1}


@pytest.mark.parametrize("workers", [0, 2])
def test_past_its_budget_the_cache_adds_nothing_and_samples_stay_right(pngs, calls, workers):
    entry = len(pickle.dumps(PngFolder(pngs, T.Compose(deterministic()))[0], protocol=5))
    budget = 3 * entry + entry // 2
    dataset = CachedDataset(PngFolder(pngs, T.Compose(deterministic()), calls), upto=3,
                            budget_bytes=budget)
    loader = DataLoader(dataset, batch_size=4, num_workers=workers)
    plain = epoch(DataLoader(PngFolder(pngs, T.Compose(deterministic())), batch_size=4))
    assert same_batches(epoch(loader), plain)
    assert same_batches(epoch(loader), plain)
    assert dataset.full and "budget" in dataset.full_reason()
    assert 0 < dataset.cached_entries() <= 3
    assert dataset._store.used_bytes() <= budget
    counts = fetches(calls)
    assert sum(1 for n in counts.values() if n == 1) >= dataset.cached_entries()
    assert sorted(counts) == list(range(SAMPLES)) and max(counts.values()) == 2


def test_a_disk_location_gets_a_directory_of_its_own_removed_with_the_cache(pngs, tmp_path):
    cached = CachedDataset(PngFolder(pngs, T.Compose(deterministic())), upto=0,
                           location=tmp_path / "disk")
    cached[0]
    directory = cached.directory
    assert directory.parent == tmp_path / "disk" and any(directory.iterdir())
    del cached
    gc.collect()
    assert not directory.exists()


def test_without_shared_memory_the_memory_cache_says_where_it_went(monkeypatch, pngs):
    monkeypatch.setattr(cache_module, "SHARED_MEMORY", Path("/nonexistent-shm"))
    with pytest.warns(UserWarning, match="not available"):
        cached = CachedDataset(PngFolder(pngs), location="memory")
    assert cached[2][1] == 2


@pytest.mark.parametrize("as_dict", [True, False])
def test_replayed_transforms_go_where_the_transform_outputs_were(as_dict):
    transform = T.Compose([T.Lambda(lambda t: t + 1), T.Lambda(lambda t: t * 10)])
    cached = CachedDataset(Labelled(transform, as_dict), upto=0)
    plain = Labelled(transform, as_dict)
    for _ in range(2):
        for i in range(4):
            got, want = cached[i], plain[i]
            if as_dict:
                assert got["label"] == want["label"]
                assert all(torch.equal(g, w) for g, w in zip(got["views"], want["views"],
                                                             strict=True))
            else:
                assert type(got) is Pair and got.label == want.label
                assert torch.equal(got.image, want.image)


def test_a_plain_list_of_transforms_on_the_transforms_attribute_is_cut_at_the_cache_point():
    cached, plain = CachedDataset(Listed(), upto=1), Listed()
    assert transform_count(plain) == 3
    torch.manual_seed(0)
    first = [cached[i] for i in range(3)]
    torch.manual_seed(0)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, [plain[i] for i in range(3)],
                                                        strict=True))
    assert not torch.equal(cached[2][1], first[2][1]) and cached.cached_entries() == 3


def test_a_dataset_that_changes_the_transform_output_is_read_uncached_with_a_warning():
    cached = CachedDataset(Rescaling(), upto=0)
    with pytest.warns(UserWarning, match="cannot be replayed"):
        assert cached[1].tolist() == [2.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [cached[i].tolist() for i in range(3)] == [[0.0], [2.0], [4.0]]
    assert cached.cached_entries() == 0


def test_iterable_datasets_and_missing_transforms_are_refused_clearly(pngs):
    with pytest.raises(TypeError, match="map-style"):
        CachedDataset(Stream())
    with pytest.raises(ValueError, match="upto=4 is not a transform"):
        CachedDataset(PngFolder(pngs, T.Compose(deterministic())), upto=4)
    with pytest.raises(ValueError, match="it has 0"):
        CachedDataset(PngFolder(pngs), upto=0)


class Numbers(Dataset):
    """The index as a float tensor, through ``transform``."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return self.transform(torch.tensor(float(index)))


def _plus(amount: float):
    return T.Lambda(lambda x: x + amount)


@pytest.mark.parametrize("gate", [
    T.RandomApply([_plus(100.0)], p=0.0),
    T.RandomChoice([_plus(1.0), _plus(1.0)]),
])
def test_a_container_with_logic_of_its_own_is_one_transform_and_is_replayed_whole(gate, tmp_path):
    # GIVEN a dataset whose transform is RandomApply / RandomChoice: it holds a
    # .transforms list but does not apply it in order
    dataset = Numbers(gate)
    assert transform_count(dataset) == 1
    cached = CachedDataset(dataset, upto=-1, location=str(tmp_path))
    # THEN replaying after the cache point runs the container, gate and all
    assert [float(cached[i]) for i in range(4)] == [float(dataset[i]) for i in range(4)]


def test_compose_nested_in_a_container_is_not_split():
    outer = T.RandomApply([T.Compose([_plus(1.0), _plus(2.0)])], p=1.0)
    assert transform_count(Numbers(outer)) == 1
    assert transform_count(Numbers(T.Compose([_plus(1.0), outer]))) == 2


class EndlessView(Dataset):
    """Wraps ``Numbers``; its ``dataset`` property makes a new view each time it is read,
    and its ``transforms`` property raises, as a lazy user wrapper may."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth

    @property
    def dataset(self):
        return EndlessView(self.depth + 1)

    @property
    def transforms(self):
        raise RuntimeError("not loaded yet")

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return torch.tensor(float(index))


def test_the_cache_looks_through_wrappers_as_the_profiler_does():
    # A wrapper chain that never ends, with properties that raise: the walk stops where the
    # profiler's stops (no transform found) instead of looping or raising.
    with pytest.raises(ValueError, match="it has 0"):
        CachedDataset(EndlessView(), upto=0)
    assert transform_count(EndlessView()) == 0
    cached = CachedDataset(EndlessView(), upto=-1)
    assert [float(cached[i]) for i in range(4)] == [0.0, 1.0, 2.0, 3.0]
