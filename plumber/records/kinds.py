"""Constants of the Profile record that every layer reads: stage kinds and knob values.

A stage's ``kind`` and a knob's value are written by the adapters (tf.data,
torch), read by the analysis and the tuner, and shown by the reports; each
is spelt once here so that the layers cannot disagree. Framework-free and
import-free, so that the record and the analysis can use it.
"""

from __future__ import annotations

import re

#: ``tf.data.AUTOTUNE``, as a profile and a plan write it (TF's own value).
AUTOTUNE = -1

#: A pool of workers that each run the stages nested in it one after another:
#: a torch DataLoader's worker processes (``num_workers``).
POOL = "workers"

#: A DataLoader's pin-memory thread; when the loader pins, it is the root above the pool.
PIN_MEMORY = "pin_memory"

#: The kinds a DataLoader pipeline's root can have: the pool, or the pin-memory
#: thread above it.
LOADER_ROOTS = frozenset({POOL, PIN_MEMORY})

#: The knob of a stage that reads from a tf.data service (``distribute``): the
#: service's address. The stages the script sent there are recorded below it,
#: unmeasured (they ran on the service's workers).
SERVICE = "service"

#: The knob of a DataLoader's ``workers`` stage whose dataset is (or wraps) plumber's
#: ``CachedDataset``: its ``upto`` (-1 caches the fetch, else the transform's index).
SAMPLE_CACHE = "sample_cache"

#: The DataLoader stages a sample cache can follow (``CachedDataset(upto=...)``):
#: the fetch (``upto=-1``) or a transform (its index).
CACHE_POINTS = re.compile(r"fetch|transform_(\d+)")


def is_loader_root(kind: str) -> bool:
    """Whether a pipeline whose root stage has this ``kind`` is a torch DataLoader."""
    return kind in LOADER_ROOTS
