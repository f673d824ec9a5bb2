"""The worker processes of a pipeline (a torch DataLoader's): samples and resident memory.

A forked worker shares the main process's pages until it touches them;
reading the dataset's Python objects updates their reference counts, which
copies those pages into the worker (copy-on-read). It shows as resident
memory (RSS) growing while the worker runs, once per worker, so the report
lists every worker process with its RSS at start, peak and end and flags
large growth. A loader without ``persistent_workers`` starts new workers
for each iteration (epoch): every process recorded is listed, numbered by
iteration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plumber.records.profile import Pipeline, WorkerStats
from plumber.reports import format as fmt

#: Growth (peak over start) above this share of the starting RSS is flagged.
GROWTH_SHARE = 0.2
#: Growth above this many bytes is flagged whatever the share.
GROWTH_BYTES = 100_000_000

#: What large growth in a forked worker means, in one sentence.
COPY_ON_READ = (
    "Memory that grows while a forked worker runs is usually copy-on-read: reading the "
    "dataset's Python objects updates their reference counts, which copies the pages the "
    "worker shared with the main process, once per worker; holding per-sample data in numpy "
    "arrays or tensors instead of Python lists and dicts avoids it."
)


@dataclass(frozen=True)
class WorkerRow:
    """One worker process, formatted; ``large`` flags growth past the thresholds."""

    worker: str
    iteration: str
    pid: str
    samples: str
    rss_start: str
    rss_peak: str
    rss_end: str
    growth: str
    large: bool


@dataclass(frozen=True)
class WorkersView:
    """The table of a pipeline's workers, with its caption and the copy-on-read warning.

    ``iterations`` is False when every worker index appears once (the
    iteration column is then left out); ``warning`` is empty unless a
    worker's growth is large.
    """

    rows: tuple[WorkerRow, ...]
    iterations: bool
    caption: str
    warning: str


def growth(worker: WorkerStats) -> int:
    """Bytes the worker's RSS rose from its start to its peak."""
    return max(worker.rss_peak_bytes - worker.rss_start_bytes, 0)


def is_large(worker: WorkerStats) -> bool:
    """Growth over :data:`GROWTH_SHARE` of the starting RSS or over :data:`GROWTH_BYTES`."""
    grown = growth(worker)
    share = grown / worker.rss_start_bytes if worker.rss_start_bytes > 0 else 0.0
    return grown > GROWTH_BYTES or share > GROWTH_SHARE


def growth_text(worker: WorkerStats) -> str:
    """``+15.8 MB (+3.9%)``; the share is left out when the start is unknown."""
    grown = growth(worker)
    start = worker.rss_start_bytes
    share = f" (+{fmt.fraction(grown / start)})" if start > 0 else ""
    return f"+{fmt.size(grown)}{share}"


def iteration_numbers(workers: Sequence[WorkerStats]) -> list[int]:
    """The iteration (1, 2, ...) of each entry: the k-th process recorded for its worker index."""
    seen: dict[int, int] = {}
    numbers = []
    for worker in workers:
        seen[worker.worker] = seen.get(worker.worker, 0) + 1
        numbers.append(seen[worker.worker])
    return numbers


def largest_growth(pipeline: Pipeline) -> WorkerStats | None:
    """The worker process whose RSS grew the most, or None without workers."""
    return max(pipeline.workers, key=growth, default=None)


def workers_view(pipeline: Pipeline) -> WorkersView | None:
    """The workers table of ``pipeline``, or None when it recorded no worker process."""
    workers = pipeline.workers
    if not workers:
        return None
    numbers = iteration_numbers(workers)
    repeated = max(numbers) > 1
    rows = tuple(
        WorkerRow(
            worker=str(w.worker),
            iteration=str(n),
            pid=str(w.pid) if w.pid > 0 else fmt.MISSING,
            samples=fmt.count(w.elements),
            rss_start=fmt.size(w.rss_start_bytes),
            rss_peak=fmt.size(w.rss_peak_bytes),
            rss_end=fmt.size(w.rss_end_bytes),
            growth=growth_text(w),
            large=is_large(w),
        )
        for w, n in zip(workers, numbers, strict=True)
    )
    caption = (
        "Resident memory (RSS) of each worker process at its start, its peak and its end; "
        "growth is peak over start."
    )
    if repeated:
        caption += (
            f" The loader started new workers for each of its {max(numbers)} iterations "
            "(persistent_workers off), so every process is listed, numbered by iteration."
        )
    warning = COPY_ON_READ if any(row.large for row in rows) else ""
    return WorkersView(rows, repeated, caption, warning)
