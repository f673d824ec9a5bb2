"""The steady windows on the resource charts: where they lie, and the charts' means over them.

The verdict and the observed rate are measured over each pipeline's steady
window, the iteration after each iterator's first step
(``ConsumerStats.steady_*``); a chart's whole-run mean also counts imports,
model building and the pipeline's start-up. So the charts shade the windows
(``ConsumerStats.steady_spans``, on the samples' clock) and state, beside the
whole-run mean, the mean over them; where a pipeline has no window they say
why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from plumber.records.profile import Profile, SteadySpan
from plumber.reports import format as fmt


@dataclass(frozen=True)
class SteadyWindows:
    """One pipeline's steady windows on the samples' clock; ``missing`` says why there are none."""

    pipeline_id: str
    spans: tuple[SteadySpan, ...]
    missing: str = ""


def steady_windows(profile: Profile) -> tuple[SteadyWindows, ...]:
    """The steady windows of every pipeline of ``profile``, in the profile's order."""
    windows = []
    for pipeline in profile.pipelines:
        consumer = pipeline.consumer
        if consumer is None:
            missing = "the training loop was not observed"
        elif not consumer.steady_steps or not consumer.steady_s:
            missing = "no iterator delivered a step after its first, so the run was all start-up"
        elif not consumer.steady_spans:
            missing = "this profile does not record when it ran (written before that was recorded)"
        else:
            missing = ""
        spans = consumer.steady_spans if consumer is not None and not missing else ()
        windows.append(SteadyWindows(pipeline.id, spans, missing))
    return tuple(windows)


def window_mean(
    t: Sequence[float], values: Sequence[float], spans: Sequence[SteadySpan]
) -> float | None:
    """Mean of the finite samples taken inside the spans; None when no sample was.

    A sample at ``t`` measures the interval that ends at ``t``, so one taken
    at a span's start belongs to what came before it: inside means
    ``start_s < t <= end_s``. Samples are evenly spaced, so their plain mean
    is the time average.
    """
    inside = [
        value
        for at, value in zip(t, values, strict=False)
        if fmt.is_number(value) and any(s.start_s < at <= s.end_s for s in spans)
    ]
    return fmean(inside) if inside else None


def steady_note(windows: Sequence[SteadyWindows]) -> str:
    """The sentence above the charts: what the shading is, or why nothing is shaded."""
    placed = [w for w in windows if w.spans]
    missing = "; ".join(
        f"{w.pipeline_id}: {w.missing}" if len(windows) > 1 else w.missing
        for w in windows
        if w.missing
    )
    if not placed:
        if not windows:
            return "No pipeline was iterated, so no steady window is shaded."
        return (
            f"No steady window was found ({missing}): the verdict's rates and every mean "
            f"below cover the whole run, start-up included."
        )
    whose = "" if len(windows) == 1 else f" of {', '.join(w.pipeline_id for w in placed)}"
    text = (
        f"The shaded span is the steady window{whose}: the iteration after each iterator's "
        f"first step, over which the observed rate and the cores kept busy are measured. "
        f"Where the verdict uses a chart's quantity, its mean over that window is given "
        f"beside the whole run's."
    )
    if missing:
        text += f" No steady window for {missing}."
    return text
