"""The pipeline drawn as a graph: a layered layout rendered as inline SVG.

Data flows top to bottom, from the source stages to the root the training
loop reads. Each stage sits one layer below the deepest stage that feeds it
(its ``inputs``, plus the body of an interleave/flat_map, whose stages carry
``nested_in``), so zip and concatenate fan in naturally. Columns come from a
depth-first walk from the root: a stage without inputs takes the next free
column and any other stage is centred over what feeds it, which keeps a
chain straight and the branches of a zip side by side. Every stage is drawn,
measured or not: a stage that was not measured is greyed with the reason.

A worker pool (a torch DataLoader) is drawn as one box holding the stages
its workers run, in order (fetch, transforms, collate): the pool's own
header (its bound) on top, each member below with its share of the pool's
time, and the edge to what reads the pool leaving the box's bottom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from markupsafe import Markup

from plumber.analyzers.results import StageAnalysis
from plumber.records.profile import Pipeline, Stage
from plumber.reports import format as fmt
from plumber.reports.paths import full_source, short_source
from plumber.reports.pool import Share, member_shares, pool_caption, pool_members
from plumber.reports.svg import element, fit, svg, text, title
from plumber.reports.view import knob_items, stage_errors, unmeasured_reason

NODE_W = 236.0
NODE_H = 84.0
_GAP_X = 28.0
_GAP_Y = 46.0
_MARGIN = 14.0
_TOP = 34.0
_PAD_X = 10.0
#: Room a body's frame takes beside (x) and above (y, its caption) what it holds.
_NEST_X = 8.0
_NEST_Y = 22.0
#: Extra room per level a frame encloses, so nested frames stay apart.
_NEST_STEP_X = 8.0
_NEST_STEP_Y = 20.0
#: Room a pool's box takes beside and below its members.
_POOL_PAD = 8.0
#: Height of the share bar under a pool member's text.
_BAR_H = 6.0


@dataclass(frozen=True)
class Layout:
    """Top-left corner of every stage's box, the drawing's size, and the order.

    ``order`` lists stage ids sources first and the root last (by layer,
    then column), the order the stage table uses too.
    """

    positions: Mapping[str, tuple[float, float]]
    width: float
    height: float
    order: tuple[str, ...]


def feeders(pipeline: Pipeline) -> dict[str, list[tuple[str, bool]]]:
    """For each stage, the stages that feed it, each flagged if it is a nested body.

    Inputs naming no stage of this pipeline are skipped. The top of a
    nested body (a stage with ``nested_in`` that feeds no other stage)
    feeds the stage it is nested in.
    """
    known = {s.id for s in pipeline.stages}
    inputs = {
        s.id: [i for i in dict.fromkeys(s.inputs) if i in known and i != s.id]
        for s in pipeline.stages
    }
    fed = {i for ids in inputs.values() for i in ids}
    result = {sid: [(i, False) for i in ids] for sid, ids in inputs.items()}
    for stage in pipeline.stages:
        parent = stage.nested_in
        if parent in known and parent != stage.id and stage.id not in fed:
            result[parent].append((stage.id, True))
    return result


def _placement_feeds(pipeline: Pipeline) -> dict[str, list[str]]:
    """What each stage is placed below: its feeders, with every worker pool turned inside out.

    A pool's header sits above its members, so the first member is placed
    below the pool, and whatever reads the pool below its last member.
    """
    feeds = {sid: [f for f, _ in pairs] for sid, pairs in feeders(pipeline).items()}
    for pool, members in pool_members(pipeline).items():
        inside = set(members)
        exits = [m for m in members if not any(m in feeds[o] for o in inside)]
        feeds[pool] = [f for f in feeds[pool] if f not in inside]
        for member in members:
            if not any(f in inside for f in feeds[member]):
                feeds[member] = [*feeds[member], pool]
        for sid, ids in feeds.items():
            if sid != pool and sid not in inside and pool in ids:
                feeds[sid] = [f for i in ids for f in (exits if i == pool else [i])]
    return feeds


def layout(pipeline: Pipeline) -> Layout:
    """Place every stage of ``pipeline`` (cycles, should a record hold one, are cut)."""
    feeds = _placement_feeds(pipeline)
    layers: dict[str, int] = {}

    def layer_of(sid: str, visiting: frozenset[str]) -> int:
        if sid not in layers:
            below = [layer_of(f, visiting | {sid}) for f in feeds[sid] if f not in visiting]
            layers[sid] = 1 + max(below) if below else 0
        return layers[sid]

    columns: dict[str, float] = {}
    next_column = 0

    def place(sid: str, visiting: frozenset[str]) -> None:
        nonlocal next_column
        for f in feeds[sid]:
            if f not in columns and f not in visiting:
                place(f, visiting | {sid})
        placed = [columns[f] for f in feeds[sid] if f in columns]
        if placed:
            columns[sid] = sum(placed) / len(placed)
        else:
            columns[sid] = next_column
            next_column += 1

    fed = {f for ids in feeds.values() for f in ids}
    starts = [pipeline.root] if pipeline.root in feeds else []
    starts += [s.id for s in pipeline.stages if s.id not in fed]
    starts += [s.id for s in pipeline.stages]
    for sid in starts:
        layer_of(sid, frozenset())
        if sid not in columns:
            place(sid, frozenset())
    _spread(layers, columns)

    # Nested bodies inside bodies get one more frame each: leave room for them.
    extra = max(max(nesting(pipeline).values(), default=0) - 1, 0)
    gap_x = _GAP_X + 2 * _NEST_STEP_X * extra
    gap_y = _GAP_Y + _NEST_STEP_Y * extra
    top = _TOP + _NEST_STEP_Y * extra
    positions = {
        sid: (_MARGIN + columns[sid] * (NODE_W + gap_x), top + layers[sid] * (NODE_H + gap_y))
        for sid in feeds
    }
    width = max((x for x, _ in positions.values()), default=0.0) + NODE_W + _MARGIN
    height = max((y for _, y in positions.values()), default=0.0) + NODE_H + _MARGIN
    order = tuple(sorted(feeds, key=lambda sid: (layers[sid], columns[sid])))
    return Layout(positions, width, height, order)


def _spread(layers: Mapping[str, int], columns: dict[str, float]) -> None:
    """Push stages of one layer apart so no two boxes overlap."""
    by_layer: dict[int, list[str]] = {}
    for sid, layer in layers.items():
        by_layer.setdefault(layer, []).append(sid)
    for ids in by_layer.values():
        ids.sort(key=lambda sid: columns[sid])
        for left, right in zip(ids, ids[1:], strict=False):
            columns[right] = max(columns[right], columns[left] + 1)


def pipeline_graph(
    pipeline: Pipeline,
    analyses: Mapping[str, StageAnalysis],
    bottleneck_id: str | None,
    uid: str,
) -> Markup:
    """The SVG drawing of ``pipeline``; ``uid`` keeps ids unique within a page."""
    placed = layout(pipeline)
    pos = placed.positions
    pools = pool_members(pipeline)
    bottoms = {pool: _pool_bottom(ids, pos) for pool, ids in pools.items()}
    shares = member_shares(pipeline)
    errors = stage_errors(pipeline)
    edges: list[Markup] = []
    for sid, pairs in feeders(pipeline).items():
        pairs = [(f, nested) for f, nested in pairs if not (nested and sid in pools)]
        for k, (feeder, nested) in enumerate(pairs):
            # Inputs enter side by side, in order: zip(a, b) shows a left of b.
            entry = pos[sid][0] + NODE_W * (k + 1) / (len(pairs) + 1)
            x, y = pos[feeder]
            start = (x + NODE_W / 2, bottoms.get(feeder, y + NODE_H))
            edges.append(_edge(start, (entry, pos[sid][1]), nested, uid))
    boxes, nodes = [], []  # a pool's box goes under the edges and the stages it holds
    for stage in pipeline.stages:
        x, y = pos[stage.id]
        node = _Node(stage, analyses.get(stage.id), stage.id == bottleneck_id,
                     shares.get(stage.id), errors.get(stage.id))
        if stage.id in pools:
            boxes.append(_pool_box(pipeline, node, pos, bottoms[stage.id]))
        else:
            nodes.append(_node(node, x, y))
    parts = [_arrow_marker(uid), *_nested_boxes(pipeline, pos), *boxes, *edges, *nodes]
    label = f"Stages of pipeline {pipeline.id}, from the sources (top) to the root (bottom)"
    return svg(placed.width, placed.height, label, *parts, cls="graph")


def _pool_bottom(members: tuple[str, ...], pos: Mapping[str, tuple[float, float]]) -> float:
    """Where a pool's box ends: below its lowest member."""
    return max(pos[m][1] for m in members) + NODE_H + _POOL_PAD


def _pool_box(
    pipeline: Pipeline, node: _Node, pos: Mapping[str, tuple[float, float]], bottom: float
) -> Markup:
    """The pool's box, its header on top and a caption over the members it holds."""
    x, y = pos[node.stage.id]
    members = pool_members(pipeline)[node.stage.id]
    first = min(pos[m][1] for m in members)
    caption = fit(pool_caption(pipeline, node.stage.id, short=True), NODE_W, 11)
    return _node(node, x, y, height=bottom - y, caption=(caption, first - y - 10))


def _arrow_marker(uid: str) -> Markup:
    """The arrowhead every edge ends in (one per drawing, named after ``uid``)."""
    head = element("path", {"d": "M0,0 L8,4 L0,8 z", "class": "arrowhead"})
    marker = element(
        "marker",
        {
            "id": f"arrow-{uid}",
            "viewBox": "0 0 8 8",
            "refX": 8,
            "refY": 4,
            "markerWidth": 7,
            "markerHeight": 7,
            "orient": "auto",
        },
        head,
    )
    return element("defs", None, marker)


def _edge(start: tuple[float, float], end: tuple[float, float], nested: bool, uid: str) -> Markup:
    """A curve from ``start``, the bottom middle of the feeding box, to ``end`` on the fed box."""
    x1, y1 = start
    x2, y2 = end[0], end[1] - 2
    bend = (y2 - y1) / 2
    path = (
        f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
    )
    cls = "edge nested" if nested else "edge"
    return element("path", {"d": path, "class": cls, "marker-end": f"url(#arrow-{uid})"})


def nesting(pipeline: Pipeline) -> dict[str, int]:
    """How many interleave/flat_map bodies each stage sits in (0 for the main chain).

    Owners that name no stage of the pipeline, and cycles, end the count.
    """
    owner = {
        s.id: s.nested_in
        for s in pipeline.stages
        if s.nested_in is not None and s.nested_in != s.id
    }
    known = {s.id for s in pipeline.stages}
    depth: dict[str, int] = {}
    for stage in pipeline.stages:
        chain: list[str] = []
        current = owner.get(stage.id)
        while current in known and current not in chain and current != stage.id:
            chain.append(current)
            current = owner.get(current)
        depth[stage.id] = len(chain)
    return depth


def _owners(pipeline: Pipeline, stage_id: str, depth: Mapping[str, int]) -> list[str]:
    """The bodies' owners around ``stage_id``, innermost first."""
    by_id = {s.id: s for s in pipeline.stages}
    chain: list[str] = []
    current = by_id[stage_id].nested_in
    while len(chain) < depth[stage_id] and current is not None:
        chain.append(current)
        current = by_id[current].nested_in
    return chain


def _nested_boxes(pipeline: Pipeline, pos: Mapping[str, tuple[float, float]]) -> list[Markup]:
    """A dashed frame around each interleave/flat_map body (not a pool), named after its owner.

    A body holds its own nested bodies too, so an outer frame encloses the
    inner ones with room to spare for their captions.
    """
    depth = nesting(pipeline)
    pools = pool_members(pipeline)
    members: dict[str, list[str]] = {}
    for stage in pipeline.stages:
        for owner in _owners(pipeline, stage.id, depth):
            if owner not in pools:  # a pool's own box holds its members
                members.setdefault(owner, []).append(stage.id)
    boxes = []
    for owner, ids in members.items():
        level = depth[owner] + 1  # the depth of the stages directly inside this frame

        def pad(sid: str, base: float, step: float, level: int = level) -> float:
            return base + step * (depth[sid] - level)

        left = min(pos[i][0] - pad(i, _NEST_X, _NEST_STEP_X) for i in ids)
        top = min(pos[i][1] - pad(i, _NEST_Y, _NEST_STEP_Y) for i in ids)
        right = max(pos[i][0] + NODE_W + pad(i, _NEST_X, _NEST_STEP_X) for i in ids)
        bottom = max(pos[i][1] + NODE_H + pad(i, _NEST_X, _NEST_STEP_X) for i in ids)
        frame = element(
            "rect",
            {
                "x": left,
                "y": top,
                "width": right - left,
                "height": bottom - top,
                "rx": 8,
                "class": "nest",
            },
        )
        caption = f"inside {owner} (per input element)"
        if fit(caption, right - left - 16, 11) != caption:
            caption = fit(f"inside {owner}", right - left - 16, 11)
        boxes.append(frame + text(left + 8, top + 15, caption, "nest-label"))
    return boxes


def _rate_line(analysis: StageAnalysis) -> str:
    """``max 40/s · cpu``: the stage's rate and what bounds it (nothing, for a pass-through)."""
    rate = f"max {fmt.rate(analysis.max_rate)}"
    return rate if analysis.resource == "none" else f"{rate} \u00b7 {analysis.resource}"


def _local_id(stage: Stage) -> str:
    """The id without the owner's prefix inside a body's frame, which names the owner.

    ``interleave-0>TFRecord`` inside "inside interleave-0" shows as ``…>TFRecord``,
    leaving room for the file name; the tooltip has the full id.
    """
    owner = stage.nested_in
    if owner and stage.id.startswith(owner + ">"):
        return "\u2026" + stage.id[len(owner) :]
    return stage.id


@dataclass(frozen=True)
class _Node:
    """What one stage's box shows: the stage, its analysis, and its marks.

    ``share`` is a pool member's part of the pool's time (drawn instead of a
    rate, which the pool's box carries); ``error`` what the stage raised.
    """

    stage: Stage
    analysis: StageAnalysis | None
    bottleneck: bool
    share: Share | None = None
    error: str | None = None


def _lines(node: _Node, reason: str | None) -> list[tuple[str, str]]:
    """The box's text lines with their classes: title, id and source, knobs, rate, tags."""
    stage, analysis = node.stage, node.analysis
    where = short_source(stage.source)
    lines = [
        (f"{stage.kind} \u00b7 {stage.op}", "n-title"),
        (_local_id(stage) + (f" \u00b7 {where}" if where else ""), "n-sub"),
    ]
    knobs = " ".join(knob_items(stage))
    if knobs:
        lines.append((knobs, "n-knobs"))
    if node.error:
        lines.append((f"raised {node.error}", "n-error"))
    if reason:
        lines.append((f"unmeasured: {reason}", "n-rate"))
    elif node.share is not None:
        lines.append((node.share.text(), "n-share"))
    elif analysis is not None:
        lines.append((_rate_line(analysis), "n-rate"))
    elif stage.stats is not None:
        lines.append((f"{fmt.count(stage.stats.elements)} elements", "n-rate"))
    if not stage.written:
        lines.append(("added by TF" + (f" ({stage.rewrite})" if stage.rewrite else ""), "n-tag"))
    elif stage.rewrite:
        lines.append((f"rewritten by TF: {stage.rewrite}", "n-tag"))
    return lines


def _share_bar(share: Share, y: float) -> list[Markup]:
    """A bar across the box at ``y``: the member's share of the pool, its CPU part darker."""
    width = NODE_W - 2 * _PAD_X
    parts = [element("rect", {"x": _PAD_X, "y": y, "width": width, "height": _BAR_H,
                              "class": "share-track"})]
    spans = [("share-wait", share.wall)]
    if share.cpu is not None:
        spans.append(("share-cpu", min(share.cpu, share.wall)))
    for cls, value in spans:
        parts.append(element("rect", {"x": _PAD_X, "y": y, "width": width * value,
                                      "height": _BAR_H, "class": cls}))
    return parts


def _node(
    node: _Node,
    x: float,
    y: float,
    height: float = NODE_H,
    caption: tuple[str, float] | None = None,
) -> Markup:
    """One stage's box: kind and op, id and source, knobs, rate, how TF changed it.

    A pool's box is ``height`` tall, wider than a stage's by its padding, and
    holds ``caption`` (text, y) above the members drawn into it.
    """
    stage = node.stage
    reason = unmeasured_reason(stage, node.analysis)
    classes = ["node"]
    classes += ["pool"] if caption is not None else []
    classes += ["bottleneck"] if node.bottleneck else []
    classes += ["unmeasured"] if reason else []
    classes += ["changed"] if (not stage.written or stage.rewrite) else []
    classes += ["error"] if node.error else []
    lines = _lines(node, reason)
    # The tooltip has in full what the box shortens: the id and the source path.
    tooltip_lines = [lines[0][0], stage.id, *(line for line, _ in lines[2:])]
    if stage.source is not None:
        tooltip_lines.append(f"source: {full_source(stage.source)}")
    if stage.as_run:
        tooltip_lines.append("ran as: " + ", ".join(stage.as_run))
    tooltip = "\n".join(tooltip_lines)
    pad = _POOL_PAD if caption is not None else 0.0
    box = {"x": -pad if pad else None, "width": NODE_W + 2 * pad, "height": height, "rx": 6}
    parts = [title(tooltip), element("rect", box)]
    for i, (line, cls) in enumerate(lines):
        size = 13.0 if cls == "n-title" else 11.0  # the title is bold: wider glyphs
        parts.append(text(_PAD_X, 17 + 15 * i, fit(line, NODE_W - 2 * _PAD_X, size), cls))
    bar_y = 17 + 15 * (len(lines) - 1) + 5
    if node.share is not None and bar_y + _BAR_H <= NODE_H - 3:  # only where it fits
        parts += _share_bar(node.share, bar_y)
    if caption is not None:
        parts.append(text(_PAD_X, caption[1], caption[0], "pool-label"))
    if node.bottleneck:
        parts.append(
            element(
                "rect",
                {"x": NODE_W - 94, "y": -12, "width": 86, "height": 17, "rx": 8, "class": "badge"},
            )
        )
        parts.append(text(NODE_W - 51, 0.5, "BOTTLENECK", "badge-text", anchor="middle"))
    attrs = {
        "class": " ".join(classes),
        "data-stage": stage.id,
        "transform": f"translate({x:.1f},{y:.1f})",
    }
    return element("g", attrs, *parts)
