"""What plumber's sample cache would cost per sample, measured on one sample.

A :class:`~plumber.torch.cache.CachedDataset` does not replay its samples
for free: a miss encodes the sample (:mod:`plumber.torch.samplecodec`) and
writes it to a file of its directory, and every hit reads the file back
and decodes it. For a decoded 800x800 RGB image (1.9 MB, pickled as a PIL
image) a hit took 2-4 ms in a loop of hits where decoding the JPEG again
took 6.3 ms; a model that took the cached stages as free predicted 38/s
from the second epoch where the plan ran slower than without a cache.

:func:`sample_cache_cost` runs a memory ``CachedDataset`` itself over two
copies of the sample: it fills both and reads the second back three
times, and returns the thread's CPU seconds of the mean fill and of the
dearest read (CPU, not wall time: a worker that waits for a core would
read as slow). The cache's own code runs, allocations included, and what
a read costs depends on the memory the process's earlier reads left
behind: reads of that image took 2.2-3.9 ms in a forked process's first
measurement and 0.5-1.8 ms in its second, so a plan is not to count on
the cheap case. The cache's directory is removed at once. One process
per loader measures each cache point once (``StageRecorder``).
"""

from __future__ import annotations

import shutil
import statistics
import time
import warnings
from typing import Any, NamedTuple

#: Reads of the filled sample; the dearest counts.
READS = 3


class CacheCost(NamedTuple):
    """CPU seconds to store one sample in a sample cache, and to read it back."""

    store_s: float
    read_s: float


def sample_cache_cost(sample: Any) -> CacheCost | None:
    """The cost of caching ``sample`` as a memory ``CachedDataset`` would; None when the
    cache could not store it (an object the codec refuses) or could not be made."""
    from plumber.torch.cache import CachedDataset

    try:
        with warnings.catch_warnings():  # a cache kept on disk for want of /dev/shm is for
            warnings.simplefilter("ignore")  # the user to hear of when they make one
            cache = CachedDataset([sample, sample], upto=-1, location="memory")
    except Exception:  # noqa: BLE001 - no cache here means no measurement, not a failure
        return None
    try:
        stores = [_seconds(cache, index) for index in (0, 1)]
        if cache.cached_entries() != 2:
            return None
        reads = [_seconds(cache, 1) for _ in range(READS)]
        return CacheCost(statistics.fmean(stores), max(reads))
    except Exception:  # noqa: BLE001 - an uncacheable sample is not the profile's failure
        return None
    finally:
        shutil.rmtree(cache.directory, ignore_errors=True)


def _seconds(cache: Any, index: int) -> float:
    """CPU seconds of one access of ``cache[index]``, its sample dropped as a batch drops it."""
    start = time.thread_time()
    cache[index]
    return time.thread_time() - start
