"""Accumulate tf.data's autotuning model (ModelProto) over a run.

``tf.data.experimental.get_model_proto(iterator)`` returns the live model of
one iterator: a node per running dataset op with cumulative counters. Nodes
of finished interleave cycle elements disappear from later protos, so we
keep the latest counters of every node id ever seen, its parent, and running
means of buffer occupancy, polled periodically during the run.
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
                stats.parameters[param.name] = param.value
            if _is_async(node):
                stats.buffer_samples += 1
                stats.buffered_sum += node.buffered_elements

    @property
    def root_elements(self) -> int:
        root = self.nodes.get(self.output) if self.output is not None else None
        return root.elements if root else 0


def _is_async(node: Any) -> bool:
    return any(p.name == "buffer_size" for p in node.parameters) or node.name.startswith(
        ("Prefetch", "ParallelMap", "MapAndBatch", "ParallelInterleave", "ParallelBatch")
    )
