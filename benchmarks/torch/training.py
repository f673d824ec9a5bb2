"""Shared by the torch workloads: the training loop and the throughput it prints.

A linear model over the flattened images keeps the step cheap, so the
loader is what the benchmark measures. ``THROUGHPUT <samples/s>`` covers
every epoch, worker start-up included, as the benchmark runner reads it.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader


def train(loader: DataLoader, pixels: int, epochs: int) -> None:
    """Train on ``loader`` for ``epochs`` epochs of ``pixels``-input images; print the rate."""
    model = torch.nn.Linear(pixels, 10)
    start, samples = time.perf_counter(), 0
    for _epoch in range(epochs):
        for images, labels in loader:
            loss = torch.nn.functional.cross_entropy(model(images.flatten(1)), labels)
            loss.backward()
            samples += images.shape[0]
    print(f"THROUGHPUT {samples / (time.perf_counter() - start):.3f}")
