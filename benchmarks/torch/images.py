"""Shared by the torch workloads: a folder of small PNG images, made once.

Deterministic (seeded) so every configuration of a benchmark reads the same
files; kept in the system temp folder between runs so that making them is
not timed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


def image_folder(count: int, size: int) -> Path:
    """``count`` random RGB PNGs of ``size`` x ``size`` pixels (made on first use)."""
    folder = Path(tempfile.gettempdir()) / f"plumber-bench-images-{count}-{size}"
    done = folder / ".complete"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:05d}.png")
        done.touch()
    return folder


class ImageFiles(Dataset):
    """Decode one PNG per sample with PIL, then apply ``transform``; label = index % 10."""

    def __init__(self, folder: Path, transform, read_delay_s: float = 0.0) -> None:
        self.paths = sorted(str(p) for p in folder.glob("*.png"))
        self.transform = transform
        self.read_delay_s = read_delay_s

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        if self.read_delay_s:
            # Stands for remote storage: the read waits without using a core.
            time.sleep(self.read_delay_s)
        with Image.open(self.paths[index]) as image:
            rgb = image.convert("RGB")
        return self.transform(rgb), index % 10
