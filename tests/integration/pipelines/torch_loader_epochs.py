"""A torch DataLoader over a map-style dataset of JPEG files, iterated once per epoch.

Each sample is read and decoded with PIL and resized (deterministic); the
loader runs in the main process and is iterated ``--epochs`` times by a
plain loop. Prints a checksum of every batch.
"""

import argparse
import os
import tempfile

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--images", type=int, default=128)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--data", default=None, help="folder for the images (default: a new one)")
args = parser.parse_args()


class JpegFolder(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with Image.open(self.paths[index]) as image:
            pixels = np.asarray(image.convert("RGB").resize((48, 48)), dtype=np.float32)
        return torch.from_numpy(pixels / 255.0)


folder = args.data or tempfile.mkdtemp(prefix="plumber-torch-epochs-")
os.makedirs(folder, exist_ok=True)
rng = np.random.default_rng(0)
paths = []
for i in range(args.images):
    paths.append(os.path.join(folder, f"{i:05d}.jpg"))
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(paths[-1])

loader = DataLoader(JpegFolder(paths), batch_size=16)
checksum = 0.0
for _epoch in range(args.epochs):
    for batch in loader:
        checksum += float(batch.sum())
print(f"checksum {checksum:.2f}")
