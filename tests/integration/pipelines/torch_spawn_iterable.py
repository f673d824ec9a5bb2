"""An IterableDataset and its transforms defined in this script, read by spawned workers.

Spawned workers re-import this script to unpickle ``ShardedPngs`` and its
``Pipeline`` of transforms (a Compose-like class of the script's own, which
plumber times as one transform; no torchvision, so the workers start fast);
each worker reads its own shard
(``get_worker_info``). The loader keeps its workers across two epochs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class Pipeline:
    """Applies its transforms in order, like torchvision's Compose."""

    def __init__(self, transforms: list) -> None:
        self.transforms = transforms

    def __call__(self, sample):
        for transform in self.transforms:
            sample = transform(sample)
        return sample


class HalfSize:
    def __call__(self, image: Image.Image) -> Image.Image:
        return image.resize((image.width // 2, image.height // 2))


class ToFloatTensor:
    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


class ShardedPngs(IterableDataset):
    def __init__(self, folder: Path, count: int) -> None:
        self.paths = sorted(folder.glob("*.png"))[:count]
        self.transform = Pipeline([HalfSize(), ToFloatTensor()])

    def __iter__(self):
        info = get_worker_info()
        start, step = (info.id, info.num_workers) if info is not None else (0, 1)
        for path in self.paths[start::step]:
            with Image.open(path) as image:
                yield self.transform(image.convert("RGB"))


def mark_worker(worker_id: int) -> None:
    Path("markers").mkdir(exist_ok=True)
    Path("markers", f"worker-{worker_id}-{os.getpid()}").touch()


def main() -> None:
    folder = Path("data")
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(2)
    for i in range(48):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    loader = DataLoader(ShardedPngs(folder, 48), batch_size=6, num_workers=2,
                        multiprocessing_context="spawn", persistent_workers=True,
                        worker_init_fn=mark_worker)
    batches = 0
    for _ in range(2):
        for batch in loader:
            batches += int(batch.shape[0] > 0)
    print("batches", batches)


if __name__ == "__main__":
    main()
