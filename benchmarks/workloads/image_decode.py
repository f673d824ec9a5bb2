"""Benchmark workload: JPEG files decoded, resized, augmented, batched (Python loop)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from tf_images import DATA_ROOT, build_dataset, make_images  # noqa: E402

directory = make_images(512, DATA_ROOT / "images-512")
dataset = build_dataset(directory, 32)
start, elements = time.perf_counter(), 0
for _ in range(5):
    for images, _labels in dataset:
        elements += int(images.shape[0])
print(f"THROUGHPUT {elements / (time.perf_counter() - start):.3f}")
