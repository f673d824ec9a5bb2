"""The pipeline as the user wrote it: stages, knobs, source lines, functions.

A ``tf.data.Dataset`` object chains to its inputs through ``_inputs()``;
its serialized GraphDef names the op each object became and the functions
it runs. Walking both together gives, per written stage, the framework op,
the knobs the user set, whether its function is random or stateful (which
forbids caching after it), and the source line recorded when it was built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plumber.records.kinds import SERVICE
from plumber.records.profile import SourceLocation

#: Op-name prefixes (without "Dataset") to framework-neutral stage kinds,
#: longest prefixes first so ``ParallelMap`` wins over ``Map``.
_KIND_PREFIXES: tuple[tuple[str, str], ...] = (
    ("MapAndBatch", "map"),
    ("ParallelMap", "map"),
    ("ParallelBatch", "batch"),
    ("PaddedBatch", "batch"),
    ("ParallelInterleave", "interleave"),
    ("LegacyParallelInterleave", "interleave"),
    ("ParallelFilter", "filter"),
    ("ShuffleAndRepeat", "shuffle"),
    ("MemoryCacheImpl", "cache"),
    ("MemoryCache", "cache"),
    ("FiniteRepeat", "repeat"),
    ("InfiniteRepeat", "repeat"),
    ("FiniteTake", "take"),
    ("FiniteSkip", "skip"),
    ("MaxIntraOpParallelism", "config"),
    ("PrivateThreadPool", "config"),
    ("AssertCardinality", "config"),
    ("AssertNext", "config"),
    ("Options", "config"),
    ("Model", "config"),
    ("Interleave", "interleave"),
    ("FlatMap", "flat_map"),
    ("Map", "map"),
    ("Batch", "batch"),
    ("Unbatch", "unbatch"),
    ("Prefetch", "prefetch"),
    ("Filter", "filter"),
    ("Shuffle", "shuffle"),
    ("Cache", "cache"),
    ("Repeat", "repeat"),
    ("Take", "take"),
    ("Skip", "skip"),
    ("Zip", "zip"),
    ("Concatenate", "concatenate"),
    ("Root", "root"),
)

#: Kinds whose as-run node holds nested pipelines (one per cycle element).
NESTING_KINDS = frozenset({"interleave", "flat_map"})

#: Reader classes that TF implements as a flat_map/interleave over file names:
#: the user wrote a source, so that is what the report calls it.
_SOURCE_WRAPPERS = {
    "TFRecordDatasetV2": "TFRecord",
    "TextLineDatasetV2": "TextLine",
    "FixedLengthRecordDatasetV2": "FixedLengthRecord",
}

#: Ops whose output is drawn at random. Besides the ``Random*`` and
#: ``StatelessRandom*`` families: truncated normals, the bounding-box sampler
#: of Inception-style crops, ``tf.random.Generator`` (``RngReadAndSkip``,
#: ``StatefulUniform*``), seed generators and candidate samplers. A stateless
#: op counts too: its seed may come from a counter or a variable.
_RANDOM_OP = re.compile(
    r"Random|Multinomial|Shuffle|TruncatedNormal|SampleDistortedBoundingBox|"
    r"StatefulUniform|StatefulStandardNormal|^Rng|NonDeterministic|SeedGenerator|"
    r"CandidateSampler"
)
#: Ops with effects or inputs plumber cannot see: Python functions,
#: variables (Keras seed generators, counters) and prints.
_STATEFUL_OP = re.compile(r"PyFunc|EagerPyFunc|Variable|Assign|Print")


def op_base(op: str) -> str:
    """``ParallelMapDatasetV2`` -> ``ParallelMapV2``: the name the model uses."""
    return op.replace("Dataset", "")


def kind_of(op: str) -> str:
    """Framework-neutral kind of a GraphDef op or an autotune-model node name."""
    base = op_base(op)
    for prefix, kind in _KIND_PREFIXES:
        if base.startswith(prefix):
            return kind
    return "source" if not base.endswith(("Op", "Impl")) else "other"


def dataset_kind(dataset: Any) -> str:
    """Kind of a dataset object from its class (``_ParallelMapDataset`` -> ``map``)."""
    return _written_kind(dataset, type(dataset).__name__.lstrip("_"))


def _written_kind(dataset: Any, op: str) -> str:
    """The kind the user wrote: a reader class is a source even where TF runs a
    flat_map; an op of no known kind that reads other datasets (``ignore_errors``,
    ``scan``, ``rebatch``) is ``other``, not a source."""
    if type(dataset).__name__ in _SOURCE_WRAPPERS:
        return "source"
    kind = kind_of(op)
    return "other" if kind == "source" and _py_inputs(dataset) else kind


@dataclass
class WrittenStage:
    """One stage the user wrote, tied to its dataset object and graph node.

    A read from a tf.data service (``distribute``) is a source here: what
    it reads was made on the service's workers. The stages the script
    handed to ``distribute`` are its ``remote`` stages, outside
    :meth:`walk`, so nothing plumber runs again in this process (CPU
    probe, randomness check) runs them here.
    """

    id: str
    kind: str
    op: str
    dataset: Any
    run_kind: str = ""
    inputs: list[WrittenStage] = field(default_factory=list)
    knobs: dict[str, Any] = field(default_factory=dict)
    source: SourceLocation | None = None
    remote: WrittenStage | None = None

    def walk(self) -> list[WrittenStage]:
        """This stage and everything below it, inputs first (bottom-up)."""
        out: list[WrittenStage] = []
        for child in self.inputs:
            out.extend(s for s in child.walk() if s not in out)
        out.append(self)
        return out


def read_written(
    dataset: Any,
    source_of: Callable[[Any], SourceLocation | None],
    distributed_of: Callable[[Any], Any] = lambda service_read: None,
) -> WrittenStage:
    """Build the written stage tree of ``dataset``.

    ``source_of`` gives the user's source line of a dataset object, as
    recorded while the script built the pipeline; ``distributed_of`` the
    dataset a service read was made from by ``distribute``, when seen. Ids
    count each kind from the bottom up, the stages sent to a service among
    them (they come before the read).
    """
    counters: dict[str, int] = {}
    built: dict[int, WrittenStage] = {}

    def tree(top: Any) -> WrittenStage:
        graph = _graph_def(top)
        nodes = {n.name: n for n in graph.node} if graph is not None else {}
        functions = {f.signature.name: f for f in graph.library.function} if graph else {}

        def build(obj: Any, node: Any) -> WrittenStage:
            if id(obj) in built:
                return built[id(obj)]
            service = is_service_read(obj)
            remote = None
            if service:
                node = _service_node(node, nodes)
                distributed = distributed_of(obj)
                remote = tree(distributed) if distributed is not None else None
            op = node.op if node is not None else type(obj).__name__.lstrip("_")
            graph_inputs = [nodes[n] for n in _dataset_inputs(node, nodes)] if node else []
            py_inputs = [] if service else list(_py_inputs(obj))
            if len(graph_inputs) != len(py_inputs):
                graph_inputs = [None] * len(py_inputs)
            inputs = [build(o, n) for o, n in zip(py_inputs, graph_inputs, strict=True)]
            kind = "source" if service else _written_kind(obj, op)
            ordinal = counters.get(kind, 0)
            counters[kind] = ordinal + 1
            stage = WrittenStage(
                id=f"{kind}-{ordinal}",
                kind=kind,
                op=_SOURCE_WRAPPERS.get(type(obj).__name__, op_base(op)),
                dataset=obj,
                run_kind=kind_of(op),
                inputs=inputs,
                knobs=service_knobs(obj) if service else _knobs(obj, node, functions),
                source=source_of(obj),
                remote=remote,
            )
            built[id(obj)] = stage
            return stage

        return build(top, _root_node(nodes))

    return tree(dataset)


def is_service_read(dataset: Any) -> bool:
    """Whether ``dataset`` reads elements from a tf.data service (``distribute``,
    ``from_dataset_id``)."""
    return type(dataset).__name__.startswith("_DataServiceDataset")


def _service_node(node: Any, nodes: dict[str, Any]) -> Any:
    """The ``DataServiceDataset`` node at or below ``node``: TF serializes a service
    read under the ``ParallelMap`` that uncompresses what the workers send."""
    current = node
    while current is not None and not current.op.startswith("DataServiceDataset"):
        below = _dataset_inputs(current, nodes)
        current = nodes[below[0]] if below else None
    return current if current is not None else node


#: tf.data service's sharding policies (``ProcessingModeDef``) by the names of
#: ``distribute``'s processing modes where it has one.
_PROCESSING_MODES = {"OFF": "parallel_epochs", "DYNAMIC": "distributed_epoch"}


def service_knobs(dataset: Any) -> dict[str, Any]:
    """What a service read was given: the service's address, the processing mode,
    ``max_outstanding_requests`` (-1: AUTOTUNE) and a shared job's name.

    Its elements are taken as random (nothing is cached after it): they are
    made on the service's workers, which produce each epoch anew, by
    functions this process cannot check.
    """
    knobs: dict[str, Any] = {"random": True}
    protocol = _scalar(getattr(dataset, "_protocol", None))
    address = _scalar(getattr(dataset, "_address", None))
    if isinstance(address, str) and address:
        knobs[SERVICE] = f"{protocol}://{address}" if protocol else address
    mode = _processing_mode(getattr(dataset, "_processing_mode", None))
    if mode is not None:
        knobs["processing_mode"] = mode
    requests = _scalar(getattr(dataset, "_max_outstanding_requests", None))
    if isinstance(requests, int):
        knobs["max_outstanding_requests"] = requests
    job = _scalar(getattr(dataset, "_job_name", None))
    if isinstance(job, str) and job:
        knobs["job_name"] = job
    return knobs


def _processing_mode(serialized: Any) -> str | None:
    try:
        from tensorflow.core.protobuf import data_service_pb2

        definition = data_service_pb2.ProcessingModeDef.FromString(serialized.numpy())
        policy = data_service_pb2.ProcessingModeDef.ShardingPolicy.Name(
            definition.sharding_policy)
    except Exception:  # noqa: BLE001 - an unreadable mode is left out, not guessed
        return None
    return _PROCESSING_MODES.get(policy, policy.lower())


def _graph_def(dataset: Any) -> Any:
    try:
        from tensorflow.core.framework import graph_pb2

        graph = graph_pb2.GraphDef()
        graph.ParseFromString(dataset._as_serialized_graph().numpy())
        return graph
    except Exception:  # noqa: BLE001 - a pipeline we cannot serialise is still profiled
        return None


def _is_dataset_op(op: str) -> bool:
    return "Dataset" in op


def _dataset_inputs(node: Any, nodes: dict[str, Any]) -> list[str]:
    names = []
    for name in node.input:
        if name.startswith("^"):
            continue
        name = name.split(":")[0]
        if name in nodes and _is_dataset_op(nodes[name].op):
            names.append(name)
    return names


def _root_node(nodes: dict[str, Any]) -> Any:
    """The dataset node the graph returns (the input of its ``_Retval``)."""
    for node in nodes.values():
        if node.op == "_Retval":
            inputs = _dataset_inputs(node, nodes)
            return nodes[inputs[0]] if inputs else None
    return None


def _py_inputs(obj: Any) -> list[Any]:
    try:
        return list(obj._inputs())
    except Exception:  # noqa: BLE001 - exotic dataset classes without inputs
        return []


def _scalar(value: Any) -> Any:
    try:
        value = value.numpy()
    except AttributeError:
        pass
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def _knobs(obj: Any, node: Any, functions: dict[str, Any]) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    for attr, knob in (
        ("_num_parallel_calls", "parallelism"),
        ("_batch_size", "batch_size"),
        ("_buffer_size", "buffer_size"),
        ("_drop_remainder", "drop_remainder"),
        ("_cycle_length", "cycle_length"),
        ("_block_length", "block_length"),
        ("_deterministic", "deterministic"),
        ("_filename", "cache"),
        ("_count", "count"),
    ):
        if hasattr(obj, attr):
            value = _scalar(getattr(obj, attr))
            if value is not None and value != "default":
                knobs[knob] = value
    cardinality = _cardinality(obj)
    if cardinality is not None:
        knobs["cardinality"] = cardinality
    if node is not None:
        ops, hidden = _function_ops(node, functions)
        if any(_RANDOM_OP.search(op) for op in (*ops, node.op)) or kind_of(node.op) == "shuffle":
            knobs["random"] = True
        if hidden or any(_STATEFUL_OP.search(op) for op in ops):
            knobs["stateful"] = True
    return knobs


def _cardinality(obj: Any) -> int | None:
    """Elements the stage's stream holds, when TF knows it statically."""
    try:
        value = int(obj.cardinality())
    except Exception:  # noqa: BLE001 - not every dataset class can say
        return None
    return value if value >= 0 else None


def _function_ops(node: Any, functions: dict[str, Any]) -> tuple[set[str], bool]:
    """Every op in the functions a node calls, following nested calls.

    The flag is True when a called function is missing from the graph's
    library: what it does cannot be seen, so it must be taken as stateful.
    """
    ops: set[str] = set()
    pending = [v.func.name for v in node.attr.values() if v.func.name]
    seen: set[str] = set()
    hidden = False
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in functions:
            hidden = True
            continue
        for inner in functions[name].node_def:
            ops.add(inner.op)
            pending.extend(v.func.name for v in inner.attr.values() if v.func.name)
    return ops, hidden


_DT_STRING = 7
_MAX_SCANNED_STRINGS = 2000


def data_files(dataset: Any, limit: int = 5) -> list[str]:
    """Existing files the pipeline names in its string constants (file lists, globs).

    Used to find the filesystem whose read bandwidth bounds the pipeline.
    """
    graph = _graph_def(dataset)
    if graph is None:
        return []
    node_defs = list(graph.node)
    for function in graph.library.function:
        node_defs.extend(function.node_def)
    found: list[str] = []
    scanned = 0
    for node in node_defs:
        if node.op != "Const" or node.attr["value"].tensor.dtype != _DT_STRING:
            continue
        for raw in node.attr["value"].tensor.string_val:
            scanned += 1
            path = _existing_file(raw.decode("utf-8", "replace"))
            if path and path not in found:
                found.append(path)
            if len(found) >= limit or scanned >= _MAX_SCANNED_STRINGS:
                return found
    return found


def _existing_file(text: str) -> str | None:
    import glob
    import os

    if not text or len(text) > 4096 or "\0" in text:
        return None
    if os.path.isfile(text):
        return os.path.abspath(text)
    if any(c in text for c in "*?["):
        matches = glob.glob(text)
        return os.path.abspath(matches[0]) if matches else None
    return None
