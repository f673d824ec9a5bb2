"""Torch workload: every sample waits 15 ms on (simulated) remote storage.

Two workers, as a typical loader is written: each worker spends most of its
time waiting, not computing, so more workers than cores is what helps.
Two epochs. Prints ``THROUGHPUT <samples/s>`` over all epochs.
"""

import torch
from images import ImageFiles, image_folder
from torch.utils.data import DataLoader
from torchvision import transforms
from training import train

EPOCHS = 2


def main() -> None:
    torch.set_num_threads(1)
    dataset = ImageFiles(image_folder(count=384, size=64), transforms.Compose([
        transforms.RandomCrop(56),
        transforms.ToTensor(),
    ]), read_delay_s=0.015)
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2)
    train(loader, 3 * 56 * 56, EPOCHS)


if __name__ == "__main__":
    main()
