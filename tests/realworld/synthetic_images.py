"""Small synthetic JPEG data sets for the real-world pipeline scripts.

Every script here makes its own data so it runs offline. Images are smooth
colour gradients with noise (JPEG files of realistic size for their pixels);
a script asks for bigger images where it plants a heavier decode. Written
with PIL and numpy only, so it serves the tf.data and torch scripts alike.
Data is written once per folder: ``plumber tune`` runs a script several
times, and only the first run pays for it.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def data_folder(argument: str | None, name: str) -> Path:
    """The folder given on the command line, or a fresh temporary one."""
    folder = Path(argument) if argument else Path(tempfile.mkdtemp(prefix=f"{name}-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def jpeg_bytes(rng: np.random.Generator, size: int, label: int) -> bytes:
    """One size x size RGB JPEG whose colour depends on ``label`` (so classes differ)."""
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    base = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1)
    tint = np.array([(label * 0.37) % 1.0, (label * 0.61) % 1.0, (label * 0.13) % 1.0])
    pixels = 255 * (0.6 * base * tint + 0.4 * rng.random((size, size, 3)))
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_class_folders(root: Path, classes: int, per_class: int, size: int) -> Path:
    """``root/class_K/img_N.jpg``: the layout ImageFolder and Keras read; kept if complete."""
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            (folder / f"img_{index}.jpg").write_bytes(jpeg_bytes(rng, size, label))
    done.touch()
    return root
