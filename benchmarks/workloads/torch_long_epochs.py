"""Benchmark workload: torch_workers' DataLoader with epochs eight times as long.

The same PIL decode and torchvision augmentation in 2 forked workers over
2048 images, 2 epochs (about 3 s on the benchmark machine) instead of 12
epochs of 256: each epoch starts its workers once, as in training, where
an epoch takes minutes. Side by side with torch_workers it shows which part
of ``--hotspots``' cost comes with each new worker (py-spy attaching to it)
and which part with the sampling itself. Prints ``THROUGHPUT <samples/s>``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "torch"))

import torch  # noqa: E402
from images import ImageFiles, image_folder  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import transforms  # noqa: E402
from training import train  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    dataset = ImageFiles(image_folder(count=2048, size=96), transforms.Compose([
        transforms.Resize(112),
        transforms.RandomResizedCrop(96),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ]))
    train(DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2), 3 * 96 * 96, 2)
