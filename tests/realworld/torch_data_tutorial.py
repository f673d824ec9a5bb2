"""Landmark regression on the face-landmarks data loader of the PyTorch data tutorial.

Adapted in shape from the PyTorch tutorial "Writing Custom Datasets,
DataLoaders and Transforms" (pytorch/tutorials, ``beginner_source/
data_loading_tutorial.py``): a ``FaceLandmarksDataset`` that reads a CSV of
landmarks and returns ``{"image": ..., "landmarks": ...}`` dicts, transform
*classes* ``Rescale``, ``RandomCrop`` and ``ToTensor`` chained by
``transforms.Compose``, and a ``DataLoader(batch_size=4, shuffle=True,
num_workers=...)``. The tutorial resizes with ``skimage.transform.resize``
(linear interpolation on floats); ours does the same in numpy. Our own code
on synthetic images; where the tutorial only shows the batches, we train a
small convolutional landmark regressor on the same CPU, for a few epochs of
a Python loop. The step takes most of the 2 cores it shares with the
workers, and ``Rescale``, deterministic, is most of the workers' time:
caching the samples before ``RandomCrop`` frees CPU for the step.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from synthetic_images import data_folder, jpeg_bytes
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

#: Landmarks per face in the tutorial's data (dlib's 68-point model).
POINTS = 68


def write_faces(root: Path, faces: int, size: int) -> Path:
    """``root/face_N.jpg`` and ``root/face_landmarks.csv``, as the tutorial's data; kept if done."""
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    with open(root / "face_landmarks.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_name", *(f"part_{i}_{axis}" for i in range(POINTS)
                                         for axis in "xy")])
        for index in range(faces):
            name = f"face_{index}.jpg"
            (root / name).write_bytes(jpeg_bytes(rng, size, index % 7))
            writer.writerow([name, *rng.integers(0, size, 2 * POINTS).tolist()])
    done.touch()
    return root


class FaceLandmarksDataset(Dataset):
    """Face Landmarks dataset."""

    def __init__(self, csv_file: Path, root_dir: Path, transform=None) -> None:
        with open(csv_file, newline="") as f:
            rows = list(csv.reader(f))[1:]
        self.names = [row[0] for row in rows]
        self.landmarks = [np.array(row[1:], dtype=float).reshape(-1, 2) for row in rows]
        self.root_dir = root_dir
        self.transform = transform

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, idx):
        if torch.is_tensor(idx):
            idx = idx.tolist()
        image = np.asarray(Image.open(self.root_dir / self.names[idx]).convert("RGB"))
        sample = {"image": image, "landmarks": self.landmarks[idx]}
        if self.transform:
            sample = self.transform(sample)
        return sample


def resize(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Linear interpolation to floats in [0, 1], as ``skimage.transform.resize`` gives."""
    pixels = image.astype(np.float64) / 255.0
    h, w = pixels.shape[:2]
    y, x = np.linspace(0, h - 1, new_h), np.linspace(0, w - 1, new_w)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (y - y0)[:, None, None], (x - x0)[None, :, None]
    rows = pixels[y0] * (1 - wy) + pixels[y1] * wy
    return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


class Rescale:
    """Rescale the image in a sample to a given size."""

    def __init__(self, output_size) -> None:
        assert isinstance(output_size, (int, tuple))
        self.output_size = output_size

    def __call__(self, sample):
        image, landmarks = sample["image"], sample["landmarks"]
        h, w = image.shape[:2]
        if isinstance(self.output_size, int):
            if h > w:
                new_h, new_w = self.output_size * h / w, self.output_size
            else:
                new_h, new_w = self.output_size, self.output_size * w / h
        else:
            new_h, new_w = self.output_size
        new_h, new_w = int(new_h), int(new_w)
        img = resize(image, new_h, new_w)
        landmarks = landmarks * [new_w / w, new_h / h]
        return {"image": img, "landmarks": landmarks}


class RandomCrop:
    """Crop randomly the image in a sample."""

    def __init__(self, output_size) -> None:
        assert isinstance(output_size, (int, tuple))
        if isinstance(output_size, int):
            self.output_size = (output_size, output_size)
        else:
            assert len(output_size) == 2
            self.output_size = output_size

    def __call__(self, sample):
        image, landmarks = sample["image"], sample["landmarks"]
        h, w = image.shape[:2]
        new_h, new_w = self.output_size
        top = np.random.randint(0, h - new_h + 1)
        left = np.random.randint(0, w - new_w + 1)
        image = image[top: top + new_h, left: left + new_w]
        landmarks = landmarks - [left, top]
        return {"image": image, "landmarks": landmarks}


class ToTensor:
    """Convert ndarrays in sample to Tensors."""

    def __call__(self, sample):
        image, landmarks = sample["image"], sample["landmarks"]
        # numpy image: H x W x C; torch image: C x H x W
        image = image.transpose((2, 0, 1))
        return {"image": torch.from_numpy(image.copy()), "landmarks": torch.from_numpy(landmarks)}


def landmark_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, 2 * POINTS),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--faces", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = write_faces(data_folder(args.data_dir, "faces"), args.faces, 400)
    face_dataset = FaceLandmarksDataset(
        csv_file=root / "face_landmarks.csv", root_dir=root,
        transform=transforms.Compose([Rescale(256), RandomCrop(224), ToTensor()]))
    dataloader = DataLoader(face_dataset, batch_size=4, shuffle=True,
                            num_workers=args.workers)
    model = landmark_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    for epoch in range(args.epochs):
        start, total = time.perf_counter(), 0.0
        for sample_batched in dataloader:
            images = sample_batched["image"].float()
            targets = sample_batched["landmarks"].float().flatten(1)
            loss = nn.functional.mse_loss(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch}: loss {total:.1f} in {time.perf_counter() - start:.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
