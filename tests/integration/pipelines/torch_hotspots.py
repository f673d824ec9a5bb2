"""A DataLoader with planted slow Python functions: in a transform, in collate_fn, in the step.

Each planted function spends its time on one line (marked PLANTED-...) and
returns without a tensor op of its own, so ``plumber profile --hotspots``
must name it, with that line, in its stage.
"""

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import Compose


def planted_transform_work(x):
    total = 0
    for i in range(20000): total += i * i  # PLANTED-TRANSFORM  # noqa: E701
    return x


def planted_collate_work(batch):
    total = 0
    for i in range(120000): total += i * i  # PLANTED-COLLATE  # noqa: E701
    return torch.stack(batch)


def planted_step(batch):
    total = 0
    for i in range(150000): total += i * i  # PLANTED-STEP  # noqa: E701
    return total


class Scale:
    def __call__(self, x):
        return x * 2


class Heavy:
    def __call__(self, x):
        return planted_transform_work(x)


class Numbers(Dataset):
    def __init__(self):
        self.transform = Compose([Scale(), Heavy()])

    def __len__(self):
        return 192

    def __getitem__(self, i):
        return self.transform(torch.full((4,), float(i)))


if __name__ == "__main__":
    loader = DataLoader(Numbers(), batch_size=8, num_workers=2,
                        collate_fn=planted_collate_work)
    for _epoch in range(2):
        for batch in loader:
            planted_step(batch)
