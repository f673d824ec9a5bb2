"""What the run measured as a whole: rates, machine CPU use, bytes read from disk.

The per-stage model predicts; these observations check it and feed the
resource bounds. Each function returns ``None`` (or NaN for a rate) when the
profile lacks the measurement, so the caller can say what is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean

from plumber.records.profile import Pipeline, Profile

#: Source ops that read files; their bytes produced approximate bytes read.
FILE_READERS = ("TFRecord", "TextLine", "FixedLengthRecord")

#: Observed reads per element that would need this many times the disk's
#: bandwidth at the observed rate were not the pipeline's own.
IMPLAUSIBLE = 2.0


def root_elements(pipeline: Pipeline) -> int | None:
    """Root elements the run produced: the root stage's count, else the consumer's steps."""
    try:
        root = pipeline.stage(pipeline.root)
    except KeyError:
        root = None
    if root is not None and root.stats is not None and root.stats.elements > 0:
        return root.stats.elements
    if pipeline.consumer is not None and pipeline.consumer.steps > 0:
        return pipeline.consumer.steps
    return None


def observed_rate(pipeline: Pipeline) -> float:
    """Root elements per second the consumer received over the iteration (NaN if unknown)."""
    consumer = pipeline.consumer
    steps = consumer.steps if consumer is not None else root_elements(pipeline)
    duration = pipeline.duration_s
    if not duration > 0 and consumer is not None:
        duration = consumer.wait_s + consumer.step_s
    if not steps or not duration > 0:
        return math.nan
    return steps / duration


def steady_rate(pipeline: Pipeline) -> float | None:
    """Root elements per second after each iterator's first step (None where not recorded).

    The first step pays the start-up (threads, buffers, function tracing,
    worker processes); the model predicts the rate that follows, so this is
    the rate it is compared with.
    """
    consumer = pipeline.consumer
    if consumer is None or not consumer.steady_steps or not consumer.steady_s:
        return None
    return consumer.steady_steps / consumer.steady_s


def past_startup(pipeline: Pipeline) -> bool:
    """False when the iterators' steady windows were recorded and hold no step.

    Then every step came during a start-up (an epoch shorter than the batches
    a DataLoader asks its workers for at once, say). Profiles that record no
    steady window say nothing either way and count as past it.
    """
    consumer = pipeline.consumer
    return consumer is None or consumer.steady_s is None or bool(consumer.steady_steps)


def startup_s(pipeline: Pipeline) -> float | None:
    """Seconds of the iteration outside its steady window: start-up (None where not recorded)."""
    consumer = pipeline.consumer
    if consumer is None or consumer.steady_s is None or not pipeline.duration_s > 0:
        return None
    return max(pipeline.duration_s - consumer.steady_s, 0.0)


def consumer_rate(pipeline: Pipeline) -> float | None:
    """The rate the training step alone allows: steps per second of step time.

    The median step where it was timed: the first call of a ``tf.function``
    traces it, and in a custom loop of 80 steps that one call made the mean
    step twice the steady one (the model put the loop at 211/s; it ran at 397/s
    once the pipeline was cached).
    """
    consumer = pipeline.consumer
    if consumer is None:
        return None
    median = consumer.step_median_s
    if median is not None and median > 0:
        return 1.0 / median
    if consumer.steps <= 0 or not consumer.step_s > 0:
        return None
    return consumer.steps / consumer.step_s


def cpu_busy_share(profile: Profile) -> float | None:
    """Mean share (0..1) of the usable cores this run kept busy while sampling.

    The run's own processes (``process_cpu_percent``: the process and its
    worker children, 100 per core as psutil reports it) against the usable
    cores, which a CPU quota can make fewer than the machine has. Without
    that series, the machine's share stands in for it.
    """
    resources = profile.resources
    process = [v for v in resources.process_cpu_percent if math.isfinite(v)]
    cores = profile.machine.cores_usable
    if process and cores > 0:
        return fmean(process) / (100.0 * cores)
    return machine_busy_share(profile)


def machine_busy_share(profile: Profile) -> float | None:
    """Mean share (0..1) of the machine's cores busy while sampling, whoever used them."""
    machine = [v for v in profile.resources.cpu_percent if math.isfinite(v)]
    return fmean(machine) / 100.0 if machine else None


def integral(t: Sequence[float], values: Sequence[float]) -> float | None:
    """Trapezoidal integral of a sampled rate (e.g. bytes/s to bytes); None below 2 samples."""
    points = [(a, b) for a, b in zip(t, values, strict=False) if math.isfinite(b)]
    if len(points) < 2:
        return None
    return sum(
        (b0 + b1) / 2 * (t1 - t0) for (t0, b0), (t1, b1) in zip(points, points[1:], strict=False)
    )


def disk_read_rate(profile: Profile) -> float | None:
    """Bytes/s read from disk while the pipelines iterated: bytes read over iteration time.

    The sampler covers the whole run; the reads are assumed to happen while
    the pipelines iterated, which is when the data was read.
    """
    total = integral(profile.resources.t, profile.resources.disk_read_bps)
    busy = sum(p.duration_s for p in profile.pipelines if p.duration_s > 0)
    if total is None or busy <= 0:
        return None
    return total / busy


def disk_bytes_per_root(
    profile: Profile, pipeline: Pipeline, roots: int, rate: float
) -> tuple[float | None, str, str | None]:
    """Bytes read from storage per root element, how it was obtained, and a doubt.

    Prefers the machine's observed reads (they include reads the model
    cannot see, such as files opened in a map); only attributable when one
    pipeline ran, and only when the pipeline could have made them: at the
    observed ``rate`` (root elements/s) they must not need :data:`IMPLAUSIBLE`
    times the disk's bandwidth. Reads it could not have made belong to the
    program (libraries it loads) or to other processes; the doubt says so
    and the bytes that file-reading sources produced stand in for them.
    """
    doubt = None
    if len(profile.pipelines) == 1:
        total = integral(profile.resources.t, profile.resources.disk_read_bps)
        bandwidth = profile.machine.disk_read_bps
        if total is not None and bandwidth and math.isfinite(rate) and rate > 0 and (
            total / roots * rate > IMPLAUSIBLE * bandwidth
        ):
            doubt = (
                f"The machine read {total / roots / 1e6:.3g} MB from disk per element "
                f"delivered, more than its disk ({bandwidth / 1e6:.3g} MB/s) could give at "
                f"the observed {rate:.3g}/s: most of those reads were not this pipeline's "
                f"(the program loading its libraries, other processes), so the disk bound "
                f"counts only what its file readers produced."
            )
        elif total is not None:
            return total / roots, "observed disk reads", None
    readers = {
        s.id: s.stats.bytes_produced
        for s in pipeline.stages
        if s.kind == "source" and s.stats is not None and s.op.startswith(FILE_READERS)
    }
    # A reader TF runs as a body nested in the written reader counts the same bytes.
    outermost = [b for sid, b in readers.items() if pipeline.stage(sid).nested_in not in readers]
    if outermost:
        return sum(outermost) / roots, "bytes produced by file-reading sources", doubt
    return None, "no disk reads attributable", doubt
