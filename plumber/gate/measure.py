"""From the profiles of repeated runs to one throughput figure per pipeline.

Pure: diagnoses each profile with the analyzers and groups the pipelines of
all repeats by their key. A pipeline's rate is the median over the repeats;
its bottleneck the one most repeats agree on, keeping every one on a tie so
the comparison can give the benefit of the doubt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import PurePath

from plumber.analyzers.diagnose import diagnose_all
from plumber.analyzers.results import Diagnosis
from plumber.gate.baseline import Bottleneck, PipelineThroughput, median_rate, most_common
from plumber.records.profile import Pipeline, Profile, SourceLocation


def location(source: SourceLocation | None) -> str | None:
    """``file:line`` with the file name only, so it matches on any checkout."""
    if source is None:
        return None
    return f"{PurePath(source.file).name}:{source.line}"


def root_location(pipeline: Pipeline) -> str:
    """Where the pipeline's root stage was built; the last located stage when TF added it."""
    try:
        root = location(pipeline.stage(pipeline.root).source)
    except KeyError:
        root = None
    if root is None:
        located = [loc for s in pipeline.stages if (loc := location(s.source)) is not None]
        root = located[-1] if located else pipeline.root
    return root


def pipeline_key(pipeline: Pipeline) -> str:
    """``pipeline-0@train.py:42``: the pipeline's id plus where its root was built."""
    return f"{pipeline.id}@{root_location(pipeline)}"


def bottleneck_of(pipeline: Pipeline, diagnosis: Diagnosis) -> Bottleneck:
    """The bottleneck the analysis named, with where its stage was built."""
    source = None
    if diagnosis.bottleneck_stage is not None:
        try:
            source = location(pipeline.stage(diagnosis.bottleneck_stage).source)
        except KeyError:
            source = None
    return Bottleneck(
        stage=diagnosis.bottleneck_stage,
        kind=diagnosis.bottleneck_kind,
        input_bound=diagnosis.input_bound,
        source=source,
    )


def throughputs(profiles: Sequence[Profile]) -> tuple[PipelineThroughput, ...]:
    """One entry per pipeline seen in any of ``profiles`` (one profile per repeat).

    A repeat that did not see a pipeline counts as NaN in its ``rates`` and
    adds no bottleneck; the median is over the repeats that measured it.
    """
    rates: dict[str, list[float]] = {}
    bottlenecks: dict[str, list[Bottleneck]] = {}
    pipelines: dict[str, Pipeline] = {}
    for repeat, profile in enumerate(profiles):
        for pipeline, diagnosis in zip(profile.pipelines, diagnose_all(profile), strict=True):
            key = pipeline_key(pipeline)
            pipelines.setdefault(key, pipeline)
            series = rates.setdefault(key, [math.nan] * len(profiles))
            series[repeat] = diagnosis.observed_rate
            bottlenecks.setdefault(key, []).append(bottleneck_of(pipeline, diagnosis))
    return tuple(
        PipelineThroughput(
            key=key,
            pipeline_id=pipeline.id,
            root=root_location(pipeline),
            rate=median_rate(rates[key]),
            rates=tuple(rates[key]),
            bottlenecks=most_common(bottlenecks[key]),
        )
        for key, pipeline in pipelines.items()
    )
