"""Benchmark workload: a DataLoader decoding PNGs with PIL and augmenting them in 2 workers.

The shape most PyTorch input pipelines have: the dataset's ``__getitem__``
reads a file, a torchvision ``Compose`` resizes, crops, flips and converts
it, and the default collate batches it, all in forked worker processes
(where ``--hotspots`` samples them too). Twelve epochs of 256 images; prints
``THROUGHPUT <samples/s>`` over all of them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "torch"))

import torch  # noqa: E402
from images import ImageFiles, image_folder  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import transforms  # noqa: E402
from training import train  # noqa: E402


def train_on_images(count: int, epochs: int) -> None:
    """Train ``epochs`` epochs over ``count`` PNGs through the 2-worker loader."""
    torch.set_num_threads(1)
    dataset = ImageFiles(image_folder(count=count, size=96), transforms.Compose([
        transforms.Resize(112),
        transforms.RandomResizedCrop(96),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ]))
    train(DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2), 3 * 96 * 96, epochs)


if __name__ == "__main__":
    train_on_images(256, 12)
