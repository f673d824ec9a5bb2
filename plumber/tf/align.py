"""Map the pipeline as written onto the pipeline as TF ran it.

TF rewrites a pipeline before running it: a sequential ``map`` becomes
``ParallelMapV2`` (map_parallelization), ``map`` + ``batch`` fuse into
``MapAndBatch``, ``shuffle`` + ``repeat`` into ``ShuffleAndRepeat``, a
``Prefetch`` is injected at the end, option datasets vanish. The autotune
model describes the as-run graph; this module walks it top-down beside the
written stages and attributes every as-run node to a written stage, to a
stage TF added, or to a nested stage inside an interleave/flat_map body.
Written stages that did not run as nodes of their own are kept and say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plumber.records.kinds import SERVICE
from plumber.tf.modelstats import ModelAccumulator, NodeStats
from plumber.tf.written import NESTING_KINDS, WrittenStage, kind_of

_LOOKAHEAD = 8


@dataclass
class RunStage:
    """As-run statistics attributed to one stage (summed over its nodes)."""

    id: str
    kind: str
    op: str
    inputs: list[str]
    written: bool = True
    nested_in: str | None = None
    as_run: list[str] = field(default_factory=list)
    rewrite: str | None = None
    note: str | None = None
    matched: bool = False
    elements: int = 0
    processing_time_s: float = 0.0
    bytes_produced: int = 0
    bytes_consumed: int = 0
    buffered_sum: float = 0.0
    buffer_samples: int = 0
    parallelism: float | None = None
    buffer_size: float | None = None

    def add(self, node: NodeStats, with_time: bool = True) -> None:
        """Attribute one as-run node's counters to this stage."""
        self.matched = True
        if node.name not in self.as_run:
            self.as_run.append(node.name)
        self.elements += node.elements
        self.bytes_produced += node.bytes_produced
        self.bytes_consumed += node.bytes_consumed
        if with_time:
            self.processing_time_s += node.processing_time_s
            self.buffered_sum += node.buffered_sum
            self.buffer_samples += node.buffer_samples
            if "parallelism" in node.parameters:
                self.parallelism = max(self.parallelism or 0, node.parameters["parallelism"])
            if "buffer_size" in node.parameters:
                self.buffer_size = max(self.buffer_size or 0, node.parameters["buffer_size"])

    def pass_through(self, source: RunStage) -> None:
        """Count the elements ``source`` handed up, which this stage passed on unchanged.

        For a configuration stage (``with_options``, thread-pool settings)
        that TF folded away rather than ran as a node: it has no time of its
        own, but its output is its input's, so the stages above it (the
        pipeline's root among them) still see how many elements flowed.
        """
        if not source.matched:
            return
        self.matched = True
        self.elements += source.elements
        self.bytes_produced += source.bytes_produced
        self.bytes_consumed += source.bytes_produced

    def scale(self, factor: float) -> None:
        """Multiply the cumulative counters (not the settings) by ``factor``."""
        self.elements = round(self.elements * factor)
        self.processing_time_s *= factor
        self.bytes_produced = round(self.bytes_produced * factor)
        self.bytes_consumed = round(self.bytes_consumed * factor)

    def merge(self, other: RunStage) -> None:
        """Fold the same stage from another iterator of the same pipeline into this one."""
        self.matched = self.matched or other.matched
        self.as_run.extend(n for n in other.as_run if n not in self.as_run)
        self.rewrite = self.rewrite or other.rewrite
        self.note = self.note or other.note
        self.elements += other.elements
        self.processing_time_s += other.processing_time_s
        self.bytes_produced += other.bytes_produced
        self.bytes_consumed += other.bytes_consumed
        self.buffered_sum += other.buffered_sum
        self.buffer_samples += other.buffer_samples
        for attr in ("parallelism", "buffer_size"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if theirs is not None:
                setattr(self, attr, max(mine or 0, theirs))


@dataclass
class Alignment:
    """Stages of one iterator's run, keyed by stage id, and the root's id."""

    root: str
    stages: dict[str, RunStage]


def align(written: WrittenStage, model: ModelAccumulator) -> Alignment:
    """Attribute the nodes of ``model`` to the stages of ``written``."""
    stages: dict[str, RunStage] = {
        w.id: RunStage(id=w.id, kind=w.kind, op=w.op, inputs=[i.id for i in w.inputs])
        for w in written.walk()
    }
    aligner = _Aligner(model, stages)
    root_node = model.nodes.get(model.output) if model.output is not None else None
    if root_node is None or not root_node.inputs:
        return Alignment(root=written.id, stages=stages)
    top = aligner.match(written, root_node.inputs[0])
    return Alignment(root=top, stages=stages)


class _Aligner:
    def __init__(self, model: ModelAccumulator, stages: dict[str, RunStage]) -> None:
        self.nodes = model.nodes
        self.stages = stages

    def match(self, w: WrittenStage, node_id: int | None) -> str:
        """Align ``w`` with the as-run node; return the id of the stage now on top."""
        node = self.nodes.get(node_id) if node_id is not None else None
        if node is None:
            return w.id
        if _fused_pair(w, node) is not None:
            return self._match_fused(w, node)
        if _runs_as(w, node):
            return self._match_same(w, node)
        if not self._runs_below(w, node):
            self.stages[w.id].note = (
                "configuration only: not a running stage; it passes its input's elements on"
                if w.run_kind == "config"
                else "removed by TF's graph rewrites before running"
            )
            if not w.inputs:
                return w.id
            below = self.match(w.inputs[0], node_id)
            self._replace_input(w.id, w.inputs[0].id, below)
            if w.run_kind == "config" and len(w.inputs) == 1:
                self.stages[w.id].pass_through(self.stages[below])
            return w.id
        return self._add_tf_stage(w, node)

    def _match_same(self, w: WrittenStage, node: NodeStats) -> str:
        stage = self.stages[w.id]
        stage.add(node)
        stage.rewrite = _rewrite_name(w, node)
        children = list(node.inputs)
        if node.name.startswith("MemoryCache") and children:
            impl = self.nodes.get(children[0])
            if impl is not None and impl.name.startswith("MemoryCacheImpl"):
                stage.add(impl, with_time=True)
                children = list(impl.inputs)
        outer, nested = children, []
        if w.run_kind in NESTING_KINDS:
            if node.name.startswith("LegacyParallelInterleave"):
                outer, nested = [], children
            else:
                outer, nested = children[:1], children[1:]
        tops = {self._add_nested(w, nested_id, path="", nested_in=w.id) for nested_id in nested}
        self._complete_cycle_elements(stage, tops - {""})
        for i, child in enumerate(w.inputs):
            if i < len(outer):
                top = self.match(child, outer[i])
                self._replace_input(w.id, child.id, top)
        return w.id

    def _match_fused(self, w: WrittenStage, node: NodeStats) -> str:
        rewrite, worker_kind = _fused_pair(w, node)  # type: ignore[misc]
        inner = w.inputs[0]
        # The fused node's time and parallelism belong to the stage that does
        # the work (the map of map+batch, the shuffle of shuffle+repeat).
        worker, other = (inner, w) if inner.run_kind == worker_kind else (w, inner)
        self.stages[worker.id].add(node)
        self.stages[other.id].add(node, with_time=False)
        if worker is inner:
            self.stages[inner.id].elements = int(node.elements * max(node.ratio, 1.0))
        for stage_id in (w.id, inner.id):
            self.stages[stage_id].rewrite = rewrite
        self.stages[other.id].note = f"fused into {node.name}; its time is counted at {worker.id}"
        if inner.inputs and node.inputs:
            top = self.match(inner.inputs[0], node.inputs[0])
            self._replace_input(inner.id, inner.inputs[0].id, top)
        return w.id

    def _add_tf_stage(self, w: WrittenStage, node: NodeStats) -> str:
        kind = kind_of(node.name)
        stage_id = f"tf-{kind}-above-{w.id}"
        stage = self.stages.get(stage_id)
        if stage is None:
            uncompress = kind == "map" and SERVICE in w.knobs
            stage = self.stages[stage_id] = RunStage(
                id=stage_id, kind=kind, op=node.name, inputs=[w.id], written=False,
                note=("uncompresses the elements the tf.data service sends (distribute adds it)"
                      if uncompress else "added by TF when it rewrote the pipeline"),
            )
        stage.add(node)
        below = self.match(w, node.inputs[0]) if node.inputs else w.id
        stage.inputs = [below]
        return stage_id

    def _add_nested(self, parent: WrittenStage, node_id: int, path: str, nested_in: str) -> str:
        node = self.nodes.get(node_id)
        if node is None:
            return ""
        path = f"{path}/{node.name}" if path else node.name
        stage_id = f"{nested_in}>{path}"
        stage = self.stages.get(stage_id)
        if stage is None:
            stage = self.stages[stage_id] = RunStage(
                id=stage_id, kind=kind_of(node.name), op=node.name, inputs=[],
                written=parent.kind in NESTING_KINDS, nested_in=nested_in,
            )
        stage.add(node)
        for child in node.inputs:
            child_id = self._add_nested(parent, child, path, nested_in)
            if child_id and child_id not in stage.inputs:
                stage.inputs.append(child_id)
        return stage_id

    def _complete_cycle_elements(self, parent: RunStage, tops: set[str]) -> None:
        """Scale nested stages up to what the interleave actually emitted.

        Every element an interleave/flat_map emits comes from one of its cycle
        elements, but a cycle element that started and finished between two
        polls was never seen. The shortfall between the parent's output and
        the seen cycle elements' output is spread over the nested stages.
        """
        seen = sum(self.stages[t].elements for t in tops)
        if seen <= 0 or parent.elements <= seen:
            return
        factor = parent.elements / seen
        for stage in self.stages.values():
            if stage.nested_in == parent.id:
                stage.scale(factor)
                stage.note = "includes cycle elements not seen by a poll, extrapolated"

    def _runs_below(self, w: WrittenStage, node: NodeStats) -> bool:
        """Whether ``w`` ran as a node under ``node`` (TF added the stages between)."""
        current: NodeStats | None = node
        for _ in range(_LOOKAHEAD):
            if current is None or not current.inputs:
                return False
            current = self.nodes.get(current.inputs[0])
            if current is not None and _runs_as(w, current):
                return True
        return False

    def _replace_input(self, stage_id: str, old: str, new: str) -> None:
        inputs = self.stages[stage_id].inputs
        self.stages[stage_id].inputs = [new if i == old else i for i in inputs]


def _runs_as(w: WrittenStage, node: NodeStats) -> bool:
    """Whether ``node`` can be ``w`` as run: the same kind, and for a configuration
    stage the same op (``AssertCardinality`` runs as a node, ``Options`` never does)."""
    if w.run_kind == "config":
        return node.name.startswith(w.op)
    return kind_of(node.name) == w.run_kind


def _fused_pair(w: WrittenStage, node: NodeStats) -> tuple[str, str] | None:
    """(rewrite name, kind doing the work) when ``node`` fuses ``w`` and its input."""
    if not w.inputs:
        return None
    pair = (w.run_kind, w.inputs[0].run_kind)
    if node.name.startswith("MapAndBatch") and pair == ("batch", "map"):
        return "map_and_batch_fusion", "map"
    if node.name.startswith("ShuffleAndRepeat") and pair == ("repeat", "shuffle"):
        return "shuffle_and_repeat_fusion", "shuffle"
    return None


def _rewrite_name(w: WrittenStage, node: NodeStats) -> str | None:
    written_parallel = w.op.startswith("Parallel")
    if w.run_kind == "map" and not written_parallel and node.name.startswith("ParallelMap"):
        return "map_parallelization"
    if w.run_kind == "batch" and not written_parallel and node.name.startswith("ParallelBatch"):
        return "batch_parallelization"
    return None
