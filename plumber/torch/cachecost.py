"""What plumber's sample cache would cost per sample, measured on one sample.

A :class:`~plumber.torch.cache.CachedDataset` does not replay its samples
for free: a miss encodes the sample (:mod:`plumber.torch.samplecodec`) and
writes it to a file of its directory, and every hit reads the file back
and decodes it. For a decoded 800x800 RGB image (1.9 MB, pickled as a PIL
image) that read took 2.3 ms where decoding the JPEG again took 6.3 ms, and
the write 3 ms more than decoding alone; a model that took the cached
stages as free predicted 38/s from the second epoch where the plan ran
slower than without a cache.

:func:`sample_cache_cost` stores one sample and reads it back through the
cache's own code, in a private directory in memory (where a memory cache
lives) that is removed at once, and returns the thread's CPU seconds for
each (CPU, not wall time: a worker that waits for a core would read as
slow). The better of two tries counts, so a first call's one-off costs
do not. A worker measures each cache point once (``StageRecorder``).
"""

from __future__ import annotations

import shutil
import time
from typing import Any, NamedTuple

#: Tries of the store and read; the cheapest counts.
TRIES = 2


class CacheCost(NamedTuple):
    """CPU seconds to store one sample in a sample cache, and to read it back."""

    store_s: float
    read_s: float


def sample_cache_cost(sample: Any) -> CacheCost | None:
    """The cost of caching ``sample`` as a memory ``CachedDataset`` would; None when the
    cache could not store it (an object the codec refuses) or no directory could be made."""
    from plumber.caching.entrystore import EntryStore
    from plumber.torch import samplecodec
    from plumber.torch.cache import make_cache_directory

    try:
        directory, in_memory = make_cache_directory("memory", warn=False)
    except OSError:
        return None
    try:
        store = EntryStore(directory, None, in_memory)
        stores, reads = [], []
        for attempt in range(TRIES):
            name = f"probe-{attempt}"
            start = time.thread_time()
            if not store.save(name, samplecodec.dumps((sample, [()]))):
                return None
            stored = time.thread_time()
            payload = store.load(name)
            if payload is None:
                return None
            samplecodec.loads(payload)
            stores.append(stored - start)
            reads.append(time.thread_time() - stored)
        return CacheCost(min(stores), min(reads))
    except Exception:  # noqa: BLE001 - an uncacheable sample is not the profile's failure
        return None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
