"""Accumulate tf.data's autotuning model (ModelProto) over a run.

``tf.data.experimental.get_model_proto(iterator)`` returns the live model of
one iterator: a node per running dataset op with cumulative counters. Nodes
of finished interleave cycle elements disappear from later protos, so we
keep the latest counters of every node id ever seen, its parent, and running
means of buffer occupancy, polled periodically during the run.

Nodes also vanish when their input is exhausted: a ``batch`` drops its whole
input subtree at the end of the data, before the last poll can see the final
counters. Such a node's counters are extrapolated at the end by how much its
nearest surviving ancestor produced after the node was last seen
(:meth:`ModelAccumulator.extrapolate`); nodes of finished cycle elements are
not, nor are the inputs of a repeat, since those ended for real.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NS = 1e-9


@dataclass
class NodeStats:
    """Latest cumulative counters of one as-run node, plus buffer samples."""

    id: int
    name: str
    inputs: tuple[int, ...] = ()
    elements: int = 0
    processing_time_s: float = 0.0
    bytes_produced: int = 0
    bytes_consumed: int = 0
    ratio: float = 0.0
    parameters: dict[str, float] = field(default_factory=dict)
    buffer_samples: int = 0
    buffered_sum: float = 0.0
    extrapolated: bool = False

    @property
    def buffered_mean(self) -> float | None:
        return self.buffered_sum / self.buffer_samples if self.buffer_samples else None


@dataclass
class ModelAccumulator:
    """Everything learned from the successive model protos of one iterator."""

    nodes: dict[int, NodeStats] = field(default_factory=dict)
    output: int | None = None
    gap_times_us: list[int] = field(default_factory=list)
    polls: int = 0
    parent: dict[int, int] = field(default_factory=dict)
    restarting: set[int] = field(default_factory=set)
    vanished: dict[int, tuple[int, int]] = field(default_factory=dict)
    _previous: dict[int, int] = field(default_factory=dict)

    def fold(self, proto: Any) -> None:
        """Merge one ``ModelProto`` into the accumulated state."""
        self.polls += 1
        if proto.output:
            self.output = proto.output
        if proto.gap_times:
            self.gap_times_us = list(proto.gap_times)
        for node_id, node in proto.nodes.items():
            stats = self.nodes.get(node_id)
            if stats is None:
                stats = self.nodes[node_id] = NodeStats(id=node_id, name=node.name)
            # Union in first-seen order: finished cycle elements drop out of
            # later protos, but their counters still belong to this parent.
            stats.inputs = tuple(dict.fromkeys(stats.inputs + tuple(node.inputs)))
            stats.elements = max(stats.elements, node.num_elements)
            stats.processing_time_s = max(stats.processing_time_s, node.processing_time * NS)
            stats.bytes_produced = max(stats.bytes_produced, node.bytes_produced)
            stats.bytes_consumed = max(stats.bytes_consumed, node.bytes_consumed)
            stats.ratio = node.ratio
            for param in node.parameters:
                stats.parameters[param.name] = parameter_in_use(param)
            if _is_async(node):
                stats.buffer_samples += 1
                stats.buffered_sum += node.buffered_elements
            for position, child in enumerate(node.inputs):
                self.parent[child] = node_id
                if _input_restarts(node.name, position):
                    self.restarting.add(child)
        self._note_vanished(set(proto.nodes))

    def _note_vanished(self, present: set[int]) -> None:
        """Remember, for nodes gone since the last poll, their nearest live ancestor."""
        for node_id in set(self._previous) - present:
            if self._ended_for_real(node_id) or node_id in self.vanished:
                continue
            ancestor = self.parent.get(node_id)
            while ancestor is not None and ancestor not in present:
                ancestor = self.parent.get(ancestor)
            if ancestor is not None and ancestor in self._previous:
                self.vanished[node_id] = (ancestor, self._previous[ancestor])
        self._previous = {node_id: self.nodes[node_id].elements for node_id in present}

    def _ended_for_real(self, node_id: int) -> bool:
        current: int | None = node_id
        while current is not None:
            if current in self.restarting:
                return True
            current = self.parent.get(current)
        return False

    def extrapolate(self) -> None:
        """Scale the counters of nodes that vanished when their input ran out.

        Factor: the ancestor's final element count over its count at the poll
        that last saw the node. Idempotent.
        """
        for node_id, (ancestor, ancestor_then) in self.vanished.items():
            stats = self.nodes[node_id]
            final = self.nodes[ancestor].elements
            if stats.extrapolated or ancestor_then <= 0 or final <= ancestor_then:
                continue
            factor = final / ancestor_then
            stats.elements = round(stats.elements * factor)
            stats.processing_time_s *= factor
            stats.bytes_produced = round(stats.bytes_produced * factor)
            stats.bytes_consumed = round(stats.bytes_consumed * factor)
            stats.extrapolated = True

    @property
    def root_elements(self) -> int:
        root = self.nodes.get(self.output) if self.output is not None else None
        return root.elements if root else 0


def parameter_in_use(param: Any) -> float:
    """The value a node's parameter has in the running pipeline.

    ``value`` is the autotuner's own working copy; ``state_value`` the
    shared state the dataset op reads. They differ under AUTOTUNE: on this
    machine a map's ``parallelism`` read 1 in ``value`` while 2 calls ran
    (``state_value`` 2), and a model given 1 call predicted 0.7x the rate
    observed. A parameter without a state has ``state_value`` 0 (proto3's
    default), so ``value`` stands then.
    """
    return param.state_value if param.state_value > 0 else param.value


def _input_restarts(parent_name: str, position: int) -> bool:
    """Whether input ``position`` of a node legitimately ends during the run.

    Cycle elements of an interleave end one after another, and a repeat makes
    a fresh input for every pass: their nodes vanishing is no loss of data.
    """
    if parent_name.startswith(("LegacyParallelInterleave", "FiniteRepeat", "InfiniteRepeat",
                               "Repeat", "ShuffleAndRepeat")):
        return True
    nesting = parent_name.startswith(("Interleave", "ParallelInterleave", "FlatMap"))
    return nesting and position > 0


def _is_async(node: Any) -> bool:
    return any(p.name == "buffer_size" for p in node.parameters) or node.name.startswith(
        ("Prefetch", "ParallelMap", "MapAndBatch", "ParallelInterleave", "ParallelBatch")
    )
