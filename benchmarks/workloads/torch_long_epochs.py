"""Benchmark workload: torch_workers' DataLoader with epochs eight times as long.

The same PIL decode and torchvision augmentation in 2 forked workers over
2048 images, 2 epochs (about 3 s on the benchmark machine) instead of 12
epochs of 256: the workers start once per epoch, as in training, where an
epoch takes minutes. Side by side with torch_workers it shows which part of
``--hotspots``' cost comes with each new worker (py-spy attaching to it) and
which part with the sampling itself. Prints ``THROUGHPUT <samples/s>``.
"""

from torch_workers import train_on_images

if __name__ == "__main__":
    train_on_images(2048, 2)
