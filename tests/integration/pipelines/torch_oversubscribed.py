"""Planted bottleneck: 16 DataLoader workers doing CPU work on a machine with fewer cores.

Each sample sorts a fresh array of random numbers with numpy (single-threaded
CPU work, no I/O), so the workers wait for a core, not for anything else:
oversubscribed. Fewer workers (about the usable cores) do the same work.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class SortedNoise(Dataset):
    """Samples that cost a few milliseconds of pure CPU each."""

    def __init__(self, samples: int, size: int) -> None:
        self.samples = samples
        self.size = size

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng(index)
        values = np.sort(rng.random(self.size))
        return torch.from_numpy(values[:: self.size // 16].copy())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--size", type=int, default=150_000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    loader = DataLoader(SortedNoise(args.samples, args.size), batch_size=4,
                        num_workers=args.workers, multiprocessing_context="fork")
    total = 0.0
    for batch in loader:
        total += float(batch.sum())
    print(f"checksum {total:.3f}")


if __name__ == "__main__":
    main()
