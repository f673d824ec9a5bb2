"""Augmentation hidden in a preset class, as torchvision's classification reference writes it.

An ImageFolder of small PNG files, each read after a 10 ms wait (as from a
remote disk), transformed by ``ClassificationPresetTrain`` (random resized
crop and flip inside the class's own ``Compose``) or, with ``--preset eval``,
by ``ClassificationPresetEval`` (resize and center crop: deterministic).
The slow read makes a sample cache worth planning; the only safe one for
the training preset is after the read, before the preset. For each epoch the
script writes a digest of every batch's images, one line per epoch, to the
file ``--digests`` names, so a test can tell whether epochs saw the same
crops.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import pil_loader


class ClassificationPresetTrain:
    def __init__(self, crop_size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 hflip_prob=0.5):
        trans = [T.RandomResizedCrop(crop_size)]
        if hflip_prob > 0:
            trans.append(T.RandomHorizontalFlip(hflip_prob))
        trans += [T.PILToTensor(), T.ConvertImageDtype(torch.float), T.Normalize(mean, std)]
        self.transforms = T.Compose(trans)

    def __call__(self, img):
        return self.transforms(img)


class ClassificationPresetEval:
    def __init__(self, crop_size, resize_size, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)):
        self.transforms = T.Compose([
            T.Resize(resize_size), T.CenterCrop(crop_size), T.PILToTensor(),
            T.ConvertImageDtype(torch.float), T.Normalize(mean, std),
        ])

    def __call__(self, img):
        return self.transforms(img)


def make_images(root: Path, per_class: int, size: int = 48) -> None:
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")


def slow_loader(path: str) -> Image.Image:
    time.sleep(0.01)
    return pil_loader(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--preset", choices=("train", "eval"), default="train")
    parser.add_argument("--digests", type=Path, required=True)
    args = parser.parse_args()
    root = Path("images")
    make_images(root, args.per_class)
    if args.preset == "train":
        preset = ClassificationPresetTrain(crop_size=32)
    else:
        preset = ClassificationPresetEval(crop_size=32, resize_size=40)
    dataset = ImageFolder(str(root), transform=preset, loader=slow_loader)
    loader = DataLoader(dataset, batch_size=8, shuffle=False)
    digests = []
    for _ in range(args.epochs):
        digest = hashlib.sha256()
        for images, labels in loader:
            digest.update(images.numpy().tobytes())
            digest.update(labels.numpy().tobytes())
        digests.append(digest.hexdigest())
    args.digests.write_text("\n".join(digests) + "\n")
    print(f"dataset {type(loader.dataset).__name__}, {len(digests)} epochs")


if __name__ == "__main__":
    main()
