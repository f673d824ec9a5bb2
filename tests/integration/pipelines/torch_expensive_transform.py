"""Planted bottleneck: a heavy GaussianBlur among cheap transforms, two forked workers.

PNG files decoded with PIL, then RandomHorizontalFlip, GaussianBlur(31),
ToTensor. The dataset holds a lock (not picklable: fork only), the loader
has a custom sampler and a worker_init_fn that leaves a marker file per
worker. The blur (transform_1) is the stage with by far the most CPU.
``--workers 0 --flip-last`` loads in the main process with the blur first, so
that more workers and a cache after the blur are what a tuner should find.
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler


def make_images(folder: Path, count: int, size: int = 96) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:04d}.png"
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


class PngFolder(Dataset):
    def __init__(self, paths: list[Path], transform) -> None:
        self.paths = paths
        self.transform = transform
        self.lock = threading.Lock()  # makes the dataset unpicklable, as many real ones are

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB")
        return self.transform(image), index % 10


class EvensThenOdds(Sampler):
    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        return iter([*range(0, self.n, 2), *range(1, self.n, 2)])

    def __len__(self) -> int:
        return self.n


def mark_worker(worker_id: int) -> None:
    Path("markers").mkdir(exist_ok=True)
    Path("markers", f"worker-{worker_id}-{os.getpid()}").touch()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--flip-last", action="store_true",
                        help="flip after the blur, so the blur can be cached")
    args = parser.parse_args()
    paths = make_images(Path("data"), args.images)
    flip, blur = T.RandomHorizontalFlip(), T.GaussianBlur(kernel_size=31, sigma=6.0)
    transform = T.Compose([*((blur, flip) if args.flip_last else (flip, blur)), T.ToTensor()])
    loader = DataLoader(PngFolder(paths, transform), batch_size=8, num_workers=args.workers,
                        sampler=EvensThenOdds(len(paths)), worker_init_fn=mark_worker,
                        multiprocessing_context="fork" if args.workers else None)
    total = 0.0
    for _ in range(args.epochs):
        for images, labels in loader:
            total += float(images.mean()) + int(labels.sum())
    print(f"checksum {total:.3f} torch {torch.__version__}")


if __name__ == "__main__":
    main()
