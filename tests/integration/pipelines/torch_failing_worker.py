"""A worker that raises: sample 7 is not an image, and __getitem__ says so.

Without plumber the ValueError reaches the loop (re-raised by the
DataLoader from worker process 1) and the script exits with status 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

PNG_MAGIC = b"\x89PNG"


class PngBytes(Dataset):
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.transform = T.ToTensor()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        data = self.paths[index].read_bytes()
        if not data.startswith(PNG_MAGIC):
            raise ValueError(f"bad sample {index}: not a PNG file")
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


def main() -> None:
    folder = Path("data")
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(16):
        path = folder / f"{i}.png"
        if i == 7:
            path.write_bytes(b"truncated upload")
        else:
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    loader = DataLoader(PngBytes(paths), batch_size=2, num_workers=2)
    for batch in loader:
        float(batch.mean())


if __name__ == "__main__":
    main()
