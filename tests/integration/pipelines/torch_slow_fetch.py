"""Planted bottleneck: a latency-bound fetch (20 ms wait per sample), driven by a trainer.

Each ``__getitem__`` waits 20 ms (as on a remote read) before decoding a
small JPEG, so fetch's wall time is far above its CPU time. The loop is a
trainer-like object that iterates the loader itself, as training
frameworks do; ``--workers`` sets ``num_workers`` (0 runs in the main process).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset


def make_images(folder: Path, count: int, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class RemoteJpegs(Dataset):
    def __init__(self, paths: list[Path], latency_s: float) -> None:
        self.paths = paths
        self.latency_s = latency_s
        self.transform = T.Compose([T.CenterCrop(48), T.ToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        time.sleep(self.latency_s)
        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB")
        return self.transform(image)


class Trainer:
    """Iterates the loader itself, like a training framework's fit()."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.steps = 0

    def fit(self, loader: DataLoader) -> None:
        for _ in range(self.epochs):
            for batch in loader:
                self.training_step(batch)

    def training_step(self, batch) -> None:
        self.steps += 1
        float(batch.mean())


def make_loader(workers: int) -> DataLoader:
    dataset = RemoteJpegs(make_images(Path("data"), 32), latency_s=0.02)
    return DataLoader(dataset, batch_size=4, num_workers=workers, shuffle=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    trainer = Trainer(args.epochs)
    trainer.fit(make_loader(args.workers))
    print("steps", trainer.steps)


if __name__ == "__main__":
    main()
