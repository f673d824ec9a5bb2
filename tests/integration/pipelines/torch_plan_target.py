"""A PyTorch input pipeline for ``plumber run --plan``: PNGs, PIL, torchvision, a DataLoader.

Writes a few small PNG files to a temporary folder, reads them for two
epochs through a DataLoader with no workers (Resize, CenterCrop, ToTensor,
Normalize: all deterministic), and prints per epoch the labels and a
checksum of the images, then how many samples were fetched (one file per
fetch, since workers are separate processes) and the loader's settings.
``--exit N`` ends the script with status N.
"""

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class PngFolder(Dataset):
    def __init__(self, root, transform, calls):
        self.files = sorted(Path(root).glob("*.png"))
        self.transform = transform
        self.calls = calls

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        (self.calls / f"{index}-{uuid.uuid4().hex}").touch()
        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), index


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--exit", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, calls = Path(tmp, "pngs"), Path(tmp, "calls")
        folder.mkdir()
        calls.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.samples):
            pixels = rng.integers(0, 256, size=(30 + i, 40 - i, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
        transform = T.Compose([T.Resize(24), T.CenterCrop(20), T.ToTensor(),
                               T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])])
        loader = DataLoader(PngFolder(folder, transform, calls), batch_size=4)  # the loader
        for epoch in range(2):
            labels, checksum = [], torch.zeros((), dtype=torch.float64)
            for images, batch_labels in loader:
                labels += batch_labels.tolist()
                checksum += images.double().sum()
            print(f"epoch {epoch}: labels {labels} checksum {checksum.item():.6f}")
        fetches = len(list(calls.iterdir()))
    print(f"fetched {fetches} samples", file=sys.stderr)
    print(f"num_workers={loader.num_workers} dataset={type(loader.dataset).__name__}",
          file=sys.stderr)
    sys.exit(args.exit)


if __name__ == "__main__":
    main()
