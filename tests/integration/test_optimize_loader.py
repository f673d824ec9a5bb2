"""``plumber.profile(loader)`` and ``plumber.optimize(loader)`` on real DataLoaders.

GIVEN a DataLoader built before plumber is called (PNG files decoded with PIL,
torchvision transforms, a fetch that waits 10 ms per sample as on a remote
read, all in the main process), WHEN it is profiled or optimized from code,
THEN plumber's loop iterates it, the profile names the worker pool as the
latency-bound bottleneck, and ``optimize`` returns a loader with more workers
yielding the same batches; a loader more workers would not speed up comes
back as the same object, with a warning.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("PIL")

import numpy as np  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset  # noqa: E402

import plumber  # noqa: E402

pytestmark = pytest.mark.slow


class RemotePngs(Dataset):
    """``count`` samples over a few PNG files, each read after a 10 ms wait."""

    def __init__(self, paths: list[Path], count: int, latency_s: float = 0.01) -> None:
        self.paths = paths
        self.count = count
        self.latency_s = latency_s
        self.transform = T.Compose([T.CenterCrop(24), T.ToTensor()])

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        time.sleep(self.latency_s)
        with Image.open(self.paths[index % len(self.paths)]) as image:
            image = image.convert("RGB")
        return self.transform(image), index


class Stream(IterableDataset):
    """An iterable dataset that does not split its stream among workers."""

    def __iter__(self):
        for i in range(40):
            time.sleep(0.005)
            yield torch.full((4,), float(i))


HERE = Path(__file__).resolve()


@pytest.fixture
def pngs(tmp_path) -> list[Path]:
    rng = np.random.default_rng(7)
    paths = []
    for i in range(8):
        path = tmp_path / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def slow_loader(pngs: list[Path], count: int = 96) -> DataLoader:
    return DataLoader(RemotePngs(pngs, count), batch_size=4, num_workers=0, shuffle=False)


def batches(loader: DataLoader) -> list[tuple[list, list]]:
    return [(images.tolist(), labels.tolist()) for images, labels in loader]


def test_profile_names_the_worker_pool_latency_bound_and_the_calling_line(pngs):
    loader = slow_loader(pngs)
    result = plumber.profile(loader, steps=10)  # the profile line
    (pipeline,) = result.profile.pipelines
    (diagnosis,) = result.diagnoses
    assert result.profile.run.framework == "torch"
    assert result.profile.run.bounded_by == "steps"
    assert pipeline.consumer.steps == 10
    assert [s.id for s in pipeline.stages] == [
        "workers", "fetch", "transform_0", "transform_1", "collate"]
    assert diagnosis.bottleneck_stage == "workers"
    assert diagnosis.bottleneck_kind == "latency"
    pool = pipeline.stage("workers")
    assert pool.knobs["num_workers"] == 0
    line = next(i for i, text in enumerate(HERE.read_text().splitlines(), 1)
                if text.endswith("# the profile line"))
    assert (Path(pool.source.file), pool.source.line) == (HERE, line)
    assert any("built before plumber.profile() was called" in n for n in result.profile.run.notes)


def test_optimize_returns_a_loader_with_more_workers_and_the_same_batches(pngs):
    # 30 ms per sample: more workers win by far even counting their start-up on a busy machine.
    loader = DataLoader(RemotePngs(pngs, 96, latency_s=0.03), batch_size=4, shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = plumber.optimize(loader, duration=2.0)
    messages = [str(w.message) for w in caught]
    assert tuned is not loader, messages
    assert isinstance(tuned, DataLoader) and tuned.num_workers > loader.num_workers
    assert tuned.dataset is loader.dataset and tuned.batch_size == 4
    assert batches(tuned) == batches(loader)


def test_optimize_returns_a_loader_it_cannot_speed_up_as_the_same_object_with_a_warning():
    data = TensorDataset(torch.arange(4000.0).reshape(1000, 4))
    loader = DataLoader(data, batch_size=10)
    with pytest.warns(UserWarning, match="returned as written"):
        tuned = plumber.optimize(loader, duration=1.0)
    assert tuned is loader


def test_an_iterable_dataset_is_profiled_and_its_optimize_is_refused_clearly():
    loader = DataLoader(Stream(), batch_size=4)
    result = plumber.profile(loader, duration=5)
    (pipeline,) = result.profile.pipelines
    assert pipeline.consumer.steps == 10
    assert pipeline.stage("fetch").op == "__iter__"
    assert any("the dataset ended after 10 elements" in n for n in result.profile.run.notes)
    with pytest.raises(TypeError, match="IterableDataset.*get_worker_info"):
        plumber.optimize(loader)


def test_a_function_building_a_loader_is_profiled_with_the_loader_line(pngs):
    def make_loader():
        return DataLoader(RemotePngs(pngs, 16), batch_size=4)  # the loader line

    result = plumber.profile(make_loader)
    pool = result.profile.pipelines[0].stage("workers")
    line = next(i for i, text in enumerate(HERE.read_text().splitlines(), 1)
                if text.endswith("# the loader line"))
    assert pool.source.line == line
    assert result.profile.pipelines[0].consumer.steps == 4
