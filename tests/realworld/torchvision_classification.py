"""Image classification training in the shape of torchvision's reference script.

Adapted in shape from pytorch/vision ``references/classification/train.py``
and its ``presets.py``: an ``ImageFolder`` whose transform is a preset
*class* holding a ``Compose`` of RandomResizedCrop, RandomHorizontalFlip,
PILToTensor, ConvertImageDtype and Normalize; a ``DataLoader`` with a
``RandomSampler``, ``num_workers`` from an argument (16 by default, as in the
reference) and pinned memory; ``train_one_epoch`` called from a Python loop
over epochs. Our own code on synthetic folders, a tiny model on the CPU; the
JPEG files are much larger than the crop, so ImageFolder's decode is the
planted bottleneck.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from synthetic_images import data_folder, write_class_folders
from torch import nn
from torchvision import transforms


class ClassificationPresetTrain:
    """The training transform as one object: a random crop and flip, then a normalised tensor."""

    def __init__(self, *, crop_size: int, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), hflip_prob: float = 0.5) -> None:
        steps = [transforms.RandomResizedCrop(crop_size, antialias=True)]
        if hflip_prob > 0:
            steps.append(transforms.RandomHorizontalFlip(hflip_prob))
        steps.extend([
            transforms.PILToTensor(),
            transforms.ConvertImageDtype(torch.float),
            transforms.Normalize(mean=mean, std=std),
        ])
        self.transforms = transforms.Compose(steps)

    def __call__(self, img):
        return self.transforms(img)


def train_one_epoch(model, criterion, optimizer, data_loader) -> float:
    model.train()
    total = 0.0
    for image, target in data_loader:
        loss = criterion(model(image), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--per-class", type=int, default=32)
    parser.add_argument("--file-size", type=int, default=800)
    parser.add_argument("--crop-size", type=int, default=32)
    args = parser.parse_args()

    root = write_class_folders(data_folder(args.data_path, "imagefolder"), classes=3,
                               per_class=args.per_class, size=args.file_size)
    dataset = torchvision.datasets.ImageFolder(  # planted bottleneck
        str(root), transform=ClassificationPresetTrain(crop_size=args.crop_size))  # random stage
    data_loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, sampler=torch.utils.data.RandomSampler(dataset),
        num_workers=args.workers, pin_memory=True)

    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, len(dataset.classes)))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        loss = train_one_epoch(model, criterion, optimizer, data_loader)
        print(f"epoch {epoch} loss {loss:.3f}")
    seconds = time.perf_counter() - start
    print(f"THROUGHPUT {args.epochs * len(data_loader) / seconds:.3f}")  # batches/s, all epochs


if __name__ == "__main__":
    main()
