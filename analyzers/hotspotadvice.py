"""What the Python hotspots point at: the stage that limits a pipeline, and advice on its code.

The samples (:mod:`plumber.analyzers.hotspots`) say where each stage spends
its time; this picks the stage that limits the pipeline (the bottleneck, or
the computing member of a DataLoader's pool, or the training loop) and,
when one user function rules it, suggests making that line cheaper, with a
known faster path where there is one (the faster path alone when one
library call, with no function of the user's on the stack, rules it).
Suggestions are advice on the user's code, never plan settings. Pure:
records and results in, results out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from plumber.analyzers.hotspots import CONSUMER, Hotspots, StageHotspots, innermost_call
from plumber.analyzers.results import Diagnosis
from plumber.analyzers.stages import busiest_member, pool_members
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
    """The sampled stage that limits ``pipeline``: the bottleneck, or the busiest stage in it.

    A consumer-bound pipeline's is the training loop. A DataLoader's pool
    stands for the chain its workers run: the member stage plumber's timing
    in the workers found busiest speaks for it (the one the diagnosis names
    "inside its workers"; None when that stage was not sampled), and with no
    diagnosis or no timing, the member stage with the most computing
    samples. Any other bottleneck speaks for itself: None when it was not
    sampled.
    """
    if diagnosis is not None and not diagnosis.input_bound:
        return found.stage("", CONSUMER)
    stages = [s for s in found.stages if s.pipeline == pipeline.id]
    bottleneck = diagnosis.bottleneck_stage if diagnosis is not None else None
    if bottleneck not in (None, POOL):
        return next((s for s in stages if s.stage == bottleneck), None)
    busiest = (busiest_member(pool_members(diagnosis.stages, POOL))
               if diagnosis is not None else None)
    if busiest is not None:
        return next((s for s in stages if s.stage == busiest.stage_id), None)
    computing = [s for s in stages if s.samples > s.idle_samples]
    return max(computing, key=lambda s: s.samples - s.idle_samples, default=None)


@dataclass(frozen=True)
class Suggestion:
    """A change to the user's own code the samples point at: advice, never a plan setting.

    ``function`` is the user's function and ``file``/``line`` its line; for a
    stage that spent its time in library code with no function of the
    user's on the stack (a torchvision dataset decoding images), ``function``
    is that library call and ``file`` is empty.
    """

    pipeline: str
    stage: str
    function: str
    text: str
    file: str = ""
    line: int | None = None


def suggest(pipeline: Pipeline, diagnosis: Diagnosis | None,
            found: Hotspots) -> tuple[Suggestion, ...]:
    """What to change in the code of the stage that limits ``pipeline``, when one call rules it.

    Only when that stage computes (the bottleneck is CPU, too little
    parallelism, or the training step), was sampled often enough for a
    firm share (:data:`~plumber.analyzers.hotspots.FEW_SAMPLES`), and one
    user function takes at least :data:`DOMINANT_SHARE` of its samples
    computing: its line is the one to make cheaper, besides the parallelism
    and cache advice. A known faster path for where it spends the time is
    said too: torchvision.io for PIL decoding, batching for per-sample Python
    arithmetic in a transform. A stage whose time went more to a library
    call outside the user's functions than to any of them gets the faster
    path for that call alone, when it rules the stage.
    """
    if diagnosis is None or diagnosis.bottleneck_kind not in _COMPUTING_KINDS:
        return ()
    stage = focus_stage(pipeline, diagnosis, found)
    if stage is None or stage.few_samples:
        return ()
    where = "the training loop" if stage.stage == CONSUMER else stage.stage
    hottest = stage.hottest
    if stage.library_leads:
        return _library_suggestion(stage, where)
    if hottest is None:
        return ()
    share = stage.share(hottest.computing_samples)
    if share < DOMINANT_SHARE:
        return ()
    place = f"{os.path.basename(hottest.file)}:{hottest.line}"
    called = f" (in {hottest.library})" if hottest.library else ""
    texts = [f"{round(share * 100)}% of {where}'s time is spent computing in "
             f"{hottest.function} at {place}{called}: making that line cheaper speeds up "
             f"the bottleneck itself."]
    if hottest.library and _decodes_with_pil(hottest.library):
        texts.append(f"It is PIL decoding images there: {_FASTER_DECODE}.")
    elif not hottest.library and stage.stage.startswith("transform_"):
        texts.append(f"{hottest.function} runs Python line by line for every sample: if it "
                     "is arithmetic on arrays, doing it once per batch (vectorised with numpy "
                     "or torch after collation, or on the device) removes that per-sample cost.")
    return tuple(Suggestion(stage.pipeline, stage.stage, hottest.function, text,
                            hottest.file, hottest.line) for text in texts)


#: The faster path for decoding JPEG files than PIL's.
_FASTER_DECODE = ("for JPEG files, torchvision.io.decode_jpeg (libjpeg-turbo, batched or on "
                  "the GPU) decodes faster than PIL")


def _decodes_with_pil(call: str) -> bool:
    """Whether a folded library call spent its time in one of PIL's decoding entry points."""
    library, function = innermost_call(call)
    return library == "PIL" and any(word in function.lower() for word in _PIL_DECODING)


def _library_suggestion(stage: StageHotspots, where: str) -> tuple[Suggestion, ...]:
    """The faster path for a stage whose time one library call (PIL decoding) took."""
    call = stage.hottest_call
    if call is None or not _decodes_with_pil(call.call):
        return ()
    share = stage.share(call.computing_samples)
    if share < DOMINANT_SHARE:
        return ()
    text = (f"{round(share * 100)}% of {where}'s time is spent in library code decoding "
            f"images with PIL ({call.call}), with no function of yours on the stack: "
            f"{_FASTER_DECODE}; a torchvision dataset such as ImageFolder takes the "
            "function that reads an image as its loader argument (the transforms after it "
            "then receive tensors, not PIL images).")
    return (Suggestion(stage.pipeline, stage.stage, call.call, text),)
