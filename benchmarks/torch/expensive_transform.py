"""Torch workload: decode PNGs with PIL, then a costly blur, then a random flip.

Written as many first loaders are: ``num_workers=0``, so decoding and the
blur run in the training loop's own process. Three epochs; the blur is
deterministic, so caching the samples after it pays from the second epoch.
Prints ``THROUGHPUT <samples/s>`` over all epochs.
"""

import time

import torch
from images import ImageFiles, image_folder
from torch.utils.data import DataLoader
from torchvision import transforms

EPOCHS = 3


def main() -> None:
    torch.set_num_threads(1)
    dataset = ImageFiles(image_folder(count=256, size=96), transforms.Compose([
        transforms.Resize(128),
        transforms.GaussianBlur(kernel_size=41, sigma=8.0),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ]))
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=0)
    model = torch.nn.Linear(3 * 128 * 128, 10)
    start, samples = time.perf_counter(), 0
    for _epoch in range(EPOCHS):
        for images, labels in loader:
            loss = torch.nn.functional.cross_entropy(model(images.flatten(1)), labels)
            loss.backward()
            samples += images.shape[0]
    print(f"THROUGHPUT {samples / (time.perf_counter() - start):.3f}")


if __name__ == "__main__":
    main()
