"""Torch workload: decode PNGs with PIL, then a costly blur, then a random flip.

Written as many first loaders are: ``num_workers=0``, so decoding and the
blur run in the training loop's own process. Three epochs; the blur is
deterministic, so caching the samples after it pays from the second epoch.
Prints ``THROUGHPUT <samples/s>`` over all epochs.
"""

import torch
from images import ImageFiles, image_folder
from torch.utils.data import DataLoader
from torchvision import transforms
from training import train

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
    train(loader, 3 * 128 * 128, EPOCHS)


if __name__ == "__main__":
    main()
