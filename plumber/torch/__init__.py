"""PyTorch DataLoader support: observation inside worker processes, plans, caching.

Nothing here imports torch at package import; each module does when used.
``plumber.torch.CachedDataset`` (the sample cache a plan places, usable by
hand) is loaded on first access.
"""

import sys
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "CachedDataset":
        from plumber.torch.cache import CachedDataset

        return CachedDataset
    raise AttributeError(f"module 'plumber.torch' has no attribute {name!r}")


def is_loader(candidate: Any) -> bool:
    """Whether ``candidate`` is a torch DataLoader (without importing torch)."""
    if "torch" not in sys.modules:
        return False
    from torch.utils.data import DataLoader

    return isinstance(candidate, DataLoader)
