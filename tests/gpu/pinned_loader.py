"""A DataLoader feeding a training step on the GPU through pinned memory.

Run by tests/gpu/test_gpu_profile.py under ``plumber profile`` on a machine
with a CUDA device. ``--gpu-work`` sets how many large matrix products each
step adds on the GPU (a GPU-bound consumer); ``--cpu-work`` how many FFT
round trips each sample costs in the workers (an input-bound pipeline). The
step reads its loss back (``loss.item()``), as training loops that log do,
so its time includes the GPU's work.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, Dataset


class NoiseImages(Dataset):
    """Seeded random images with ``cpu_work`` FFT round trips each."""

    def __init__(self, count: int, side: int, cpu_work: int) -> None:
        self.count, self.side, self.cpu_work = count, side, cpu_work

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(index)
        image = torch.rand(3, self.side, self.side, generator=generator)
        for _ in range(self.cpu_work):
            image = torch.fft.ifft2(torch.fft.fft2(image)).real
        return image, index % 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--gpu-work", type=int, default=0)
    parser.add_argument("--cpu-work", type=int, default=0)
    args = parser.parse_args()
    device = torch.device("cuda")
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * args.side * args.side, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    weights = torch.randn(8192, 8192, device=device)
    dataset = NoiseImages(args.samples, args.side, args.cpu_work)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=args.workers,
                        pin_memory=True)
    for _ in range(args.epochs):
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            extra = weights
            for _ in range(args.gpu_work):
                extra = torch.tanh(extra @ weights)
            loss = torch.nn.functional.cross_entropy(model(images), labels) + extra.mean() * 0
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
