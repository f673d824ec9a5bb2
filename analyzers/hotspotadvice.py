"""What the Python hotspots point at: the stage that limits a pipeline, and advice on its code.

The samples (:mod:`plumber.analyzers.hotspots`) say where each stage spends
its time; this picks the stage that limits the pipeline (the bottleneck, or
the computing member of a DataLoader's pool, or the training loop) and,
when one user function rules it, suggests making that line cheaper, with a
known faster path where there is one. Suggestions are advice on the user's
code, never plan settings. Pure: records and results in, results out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from plumber.analyzers.hotspots import CONSUMER, Hotspots, StageHotspots
from plumber.analyzers.results import Diagnosis
from plumber.records.kinds import POOL
from plumber.records.profile import Pipeline

#: The share of a stage's samples one function's computing must reach to dominate it.
DOMINANT_SHARE = 0.5

#: Bottleneck kinds where the limiting stage computes (its code is the cost).
_COMPUTING_KINDS = frozenset({"cpu", "parallelism", "consumer"})

#: PIL entry points that decode an image file (where torchvision.io decodes faster).
_PIL_DECODING = ("open", "load", "decode", "convert", "draft")


def focus_stage(pipeline: Pipeline, diagnosis: Diagnosis | None,
                found: Hotspots) -> StageHotspots | None:
    """The sampled stage that limits ``pipeline``: the bottleneck, or the computing stage in it.

    A consumer-bound pipeline's is the training loop. A DataLoader's pool
    stands for the chain its workers run, so the member stage with the most
    computing samples speaks for it (as for a pipeline not analysed). Any
    other bottleneck speaks for itself: None when it was not sampled.
    """
    if diagnosis is not None and not diagnosis.input_bound:
        return found.stage("", CONSUMER)
    stages = [s for s in found.stages if s.pipeline == pipeline.id]
    bottleneck = diagnosis.bottleneck_stage if diagnosis is not None else None
    if bottleneck not in (None, POOL):
        return next((s for s in stages if s.stage == bottleneck), None)
    computing = [s for s in stages if s.samples > s.idle_samples]
    return max(computing, key=lambda s: s.samples - s.idle_samples, default=None)


@dataclass(frozen=True)
class Suggestion:
    """A change to the user's own code the samples point at: advice, never a plan setting."""

    pipeline: str
    stage: str
    function: str
    file: str
    line: int
    text: str


def suggest(pipeline: Pipeline, diagnosis: Diagnosis | None,
            found: Hotspots) -> tuple[Suggestion, ...]:
    """What to change in the code of the stage that limits ``pipeline``, when one function rules it.

    Only when that stage computes (the bottleneck is CPU, too little
    parallelism, or the training step) and one user function takes at least
    :data:`DOMINANT_SHARE` of its samples computing: its line is the one to
    make cheaper, besides the parallelism and cache advice. A known faster
    path for where it spends the time is said too: torchvision.io for PIL
    decoding, batching for per-sample Python arithmetic in a transform.
    """
    if diagnosis is None or diagnosis.bottleneck_kind not in _COMPUTING_KINDS:
        return ()
    stage = focus_stage(pipeline, diagnosis, found)
    hottest = stage.hottest if stage is not None else None
    if stage is None or hottest is None:
        return ()
    share = stage.share(hottest.computing_samples)
    if share < DOMINANT_SHARE:
        return ()
    where = "the training loop" if stage.stage == CONSUMER else stage.stage
    place = f"{os.path.basename(hottest.file)}:{hottest.line}"
    called = f" (in {hottest.library})" if hottest.library else ""
    texts = [f"{round(share * 100)}% of {where}'s time is spent computing in "
             f"{hottest.function} at {place}{called}: making that line cheaper speeds up "
             f"the bottleneck itself."]
    package, _, entry = hottest.library.partition(" ")
    if package == "PIL" and any(word in entry.lower() for word in _PIL_DECODING):
        texts.append("It is PIL decoding images there: for JPEG files, "
                     "torchvision.io.decode_jpeg (libjpeg-turbo, batched or on the GPU) "
                     "decodes faster than PIL.")
    elif not hottest.library and stage.stage.startswith("transform_"):
        texts.append(f"{hottest.function} runs Python line by line for every sample: if it "
                     "is arithmetic on arrays, doing it once per batch (vectorised with numpy "
                     "or torch after collation, or on the device) removes that per-sample cost.")
    return tuple(Suggestion(stage.pipeline, stage.stage, hottest.function, hottest.file,
                            hottest.line, text) for text in texts)
