"""The report's Python hotspots (``--hotspots``): where inside each stage the time went.

For each pipeline, the headline names the hottest user function of the
stage that limits it, with its file:line and its share of that stage's
sampled time, or says that the stage runs TensorFlow ops in C++ with no
Python frames (:func:`pipeline_hotspot`, also printed in the terminal
summary). The hotspots section has, per stage, a table of its top
functions (self and total samples, computing or waiting) and an icicle
chart of its folded stacks (inline SVG, outermost call on top), each stage
collapsible, the bottleneck's open.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from plumber.analyzers.hotspotadvice import focus_stage
from plumber.analyzers.hotspots import (
    CONSUMER,
    FoldedStack,
    Hotspots,
    StageHotspots,
)
from plumber.analyzers.results import Diagnosis
from plumber.records.profile import Pipeline
from plumber.reports import format as fmt
from plumber.reports.svg import element, fit, svg, text, title

#: Icicle chart geometry, in CSS pixels; rows below ``ICICLE_DEPTH`` are not drawn.
ICICLE_WIDTH, ROW_HEIGHT, ICICLE_DEPTH = 880.0, 18.0, 14
#: Narrowest box drawn; narrower calls are part of their parent's width.
MIN_BOX_PX = 2.0


def pipeline_hotspot(pipeline: Pipeline, diagnosis: Diagnosis | None,
                     found: Hotspots) -> str | None:
    """The headline's hotspot line of a pipeline: its focus stage's hottest function.

    A tf.data stage that limits the pipeline and ran no Python at all (a map
    of TF ops) gets a line saying so, with the CPU its ops took instead.
    """
    text = headline_hotspot(focus_stage(pipeline, diagnosis, found))
    if text is not None or diagnosis is None or not diagnosis.input_bound:
        return text
    bottleneck = diagnosis.bottleneck_stage
    if bottleneck is None or pipeline.is_loader or found.stage(pipeline.id, bottleneck):
        return None
    stats = pipeline.stage(bottleneck).stats
    cpu = stats.cpu_time_s if stats is not None else None
    spent = (f"its ops took {fmt.seconds(cpu)} of CPU (measured by the CPU probe)"
             if fmt.is_number(cpu) else "its CPU time was not measured")
    return (f"{bottleneck} runs TensorFlow ops in C++, where py-spy sees no Python "
            f"frames; {spent}")


def headline_hotspot(stage: StageHotspots | None) -> str | None:
    """``planted_work (train.py:14): 78% of transform_1's sampled time, computing``.

    Where a library call outside the user's functions computed more than
    any of them, the line names it instead; where nothing computed, it says
    where the stage waited. A stage sampled too rarely for a firm share says
    how rarely.
    """
    if stage is None:
        return None
    where = "the training loop" if stage.stage == CONSUMER else stage.stage
    rough = (f" (only {fmt.counted(stage.samples, 'sample')}: a rough share; a longer run "
             "gives a firmer one)" if stage.few_samples else "")
    hottest, call = stage.hottest, stage.hottest_call
    if stage.library_leads and call is not None:
        share = fmt.fraction(stage.share(call.computing_samples))
        if not stage.functions:
            return (f"no function of yours in {where}: {share} of its sampled Python time is "
                    f"computing in library code ({call.call}){rough}")
        return (f"library code in {where}, outside your functions: {share} of its sampled "
                f"Python time is computing in {call.call}{rough}")
    if hottest is not None:
        called = f" in {hottest.library}" if hottest.library else ""
        return (f"{hottest.function} ({_place(hottest.file, hottest.line)}){called}: "
                f"{fmt.fraction(stage.share(hottest.computing_samples))} of {where}'s sampled "
                f"Python time, computing{rough}")
    if stage.functions:
        waited = stage.functions[0]
        inside = f" in {waited.library}" if waited.library else ""
        return (f"{waited.function} ({_place(waited.file, waited.line)}){inside}: "
                f"{where}'s sampled Python time was all waiting{rough}")
    top = stage.folded[0].labels if stage.folded else ()
    return (f"no function of yours in {where}: its sampled time waited in library code"
            + (f" ({top[-1]})" if top else ""))


def _place(file: str, line: int) -> str:
    return f"{os.path.basename(file) or file}:{line}"


@dataclass(frozen=True)
class HotRow:
    """One function of a stage's table, formatted; a library call made outside the user's
    functions has an empty ``function`` and ``place``."""

    function: str
    place: str
    full_place: str
    self_share: str
    total_share: str
    computing: str
    library: str


@dataclass(frozen=True)
class StageSection:
    """One stage's collapsible part of the hotspots section."""

    title: str
    summary: str
    rows: tuple[HotRow, ...]
    icicle: Markup
    #: Whether any frame of the user's code was sampled (rows with a function).
    user_code: bool
    open: bool = False


@dataclass(frozen=True)
class HotspotsView:
    """The hotspots section: a line on what was sampled, one part per stage, the C++-only stages."""

    intro: str
    stages: tuple[StageSection, ...] = field(default_factory=tuple)
    #: tf.data stages that ran TF ops in C++ only, with their CPU time.
    in_cpp: tuple[str, ...] = ()


def hotspots_view(found: Hotspots, focus: Sequence[StageHotspots],
                  pipelines: Sequence[Pipeline] = ()) -> HotspotsView:
    """The section for ``found``; the stages in ``focus`` (the headlines') are open.

    The tf.data stages of ``pipelines`` that used CPU but ran no Python are
    listed as running in C++, with that CPU.
    """
    kept = found.samples - found.unattributed_samples
    dropped = (f" ({fmt.counted(found.dropped_samples, 'more sample')} of rarer stacks were "
               "left out to keep the profile small)" if found.dropped_samples else "")
    intro = (f"py-spy sampled the Python stacks {found.rate_hz:g} times a second per thread: "
             f"{fmt.counted(found.samples, 'sample')}{dropped}, {kept:,} of them in a stage or "
             "the training loop (the rest are plumber's and the frameworks' own threads, "
             "start-up and imports). Library frames are folded under the line of yours that "
             "called them, named by the call made and, where it went on into another library, "
             "the one the time went to. A sample counts as computing unless it is in a wait "
             "(a lock, queue, socket or the pipeline's next()): a thread waiting for a core "
             "counts as computing, as py-spy cannot tell it from one running.")
    if found.sampler_cpu_s is not None:
        intro += (f" py-spy itself used {fmt.seconds(found.sampler_cpu_s)} of CPU, left out of "
                  "the run's own.")
    sections = tuple(_section(s, s in focus) for s in found.stages if s.samples)
    return HotspotsView(intro=intro, stages=sections, in_cpp=_in_cpp(found, pipelines))


def _in_cpp(found: Hotspots, pipelines: Sequence[Pipeline]) -> tuple[str, ...]:
    """``pipeline-0 / map-0: 6.5 s of CPU``: tf.data stages that computed without Python."""
    lines = []
    for pipeline in pipelines:
        if pipeline.is_loader:
            continue
        for stage in pipeline.stages:
            cpu = stage.stats.cpu_time_s if stage.stats is not None else None
            if fmt.is_number(cpu) and cpu > 0 and found.stage(pipeline.id, stage.id) is None:
                lines.append(f"{pipeline.id} / {stage.id}: {fmt.seconds(cpu)} of CPU")
    return tuple(lines)


def _section(stage: StageHotspots, is_open: bool) -> StageSection:
    name = "training loop (main thread)" if stage.stage == CONSUMER else \
        f"{stage.pipeline} / {stage.stage}"
    summary = (f"{fmt.counted(stage.samples, 'sample')} ({fmt.seconds(stage.seconds)} of "
               f"thread time), {fmt.fraction(stage.share(stage.samples - stage.idle_samples))} "
               "computing")
    rows = tuple(
        HotRow(
            function=f.function,
            place=_place(f.file, f.line),
            full_place=f"{f.file}:{f.line}",
            self_share=fmt.fraction(stage.share(f.self_samples)),
            total_share=fmt.fraction(stage.share(f.total_samples)),
            computing=fmt.fraction(f.computing_samples / f.self_samples)
            if f.self_samples else "",
            library=f.library,
        )
        for f in stage.functions
    )
    library_rows = tuple(
        HotRow(function="", place="", full_place="",
               self_share=fmt.fraction(stage.share(c.samples)),
               total_share=fmt.fraction(stage.share(c.samples)),
               computing=fmt.fraction(c.computing_samples / c.samples), library=c.call)
        for c in stage.library_calls
    )
    return StageSection(title=name, summary=summary, rows=rows + library_rows,
                        icicle=icicle(stage.folded, name, stage.samples), open=is_open,
                        user_code=bool(rows))


@dataclass
class _Node:
    samples: int = 0
    idle: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def icicle(folded: Sequence[FoldedStack], name: str, samples: int | None = None) -> Markup:
    """An icicle chart of folded stacks: each call a box as wide as its samples, callees below.

    A box is grey as far as its samples waited; its tooltip gives the call,
    its samples and their share of ``samples``, the stage's (the stacks
    charted may be only its most sampled ones), by default the stacks' own.
    """
    root = _Node()
    for stack in folded:
        root.samples += stack.samples
        root.idle += stack.idle_samples
        node = root
        for label in stack.labels[:ICICLE_DEPTH]:
            node = node.children.setdefault(label, _Node())
            node.samples += stack.samples
            node.idle += stack.idle_samples
    if root.samples == 0:
        return Markup("")
    boxes: list[Markup] = []
    depth = _draw(root, 0.0, ICICLE_WIDTH, 0, max(samples or 0, root.samples), boxes)
    height = max(depth, 1) * ROW_HEIGHT
    return svg(ICICLE_WIDTH, height, f"icicle chart of {name}", *boxes, cls="icicle")


def _draw(node: _Node, x: float, width: float, row: int, total: int,
          boxes: list[Markup]) -> int:
    """Draw ``node``'s children from ``x`` on ``row`` and below; how many rows are used."""
    deepest = row
    for label, child in sorted(node.children.items(), key=lambda kv: -kv[1].samples):
        child_width = width * child.samples / node.samples
        if child_width >= MIN_BOX_PX:
            y = row * ROW_HEIGHT
            waiting = child.idle / child.samples
            tip = f"{label}: {fmt.counted(child.samples, 'sample')} " \
                f"({fmt.fraction(child.samples / total)})" + (
                f", {fmt.fraction(waiting)} waiting" if child.idle else "")
            box = element("rect", {"x": x, "y": y, "width": max(child_width - 1, 1.0),
                                   "height": ROW_HEIGHT - 1,
                                   "class": "hot-idle" if waiting > 0.5 else "hot-cpu"},
                          title(tip))
            boxes.append(box)
            if child_width > 30:
                boxes.append(text(x + 3, y + ROW_HEIGHT - 5, fit(label, child_width - 6, 11),
                                  cls="hot-label"))
            deepest = max(deepest, row + 1, _draw(child, x, child_width, row + 1, total, boxes))
        x += child_width
    return deepest
