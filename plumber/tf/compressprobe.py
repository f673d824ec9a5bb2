"""How each stage's elements compress as tf.data service would send them, and at what CPU.

``distribute`` with its default compression (``AUTO``, TF 2.21
``data_service_ops``) maps the workers' output through ``compress`` and the
training process uncompresses what arrives. The bytes that cross the
network, and the CPU the training process spends receiving them, depend on
how well the elements compress, so the offload model needs it per cut.
After the script, a few elements of each stage's prefix are read again and
put through the same two ops; their sizes and the CPU each op took (on the
calling thread, where TF runs them inline) are recorded. Called eagerly,
each op also pays Python's dispatch, which the service's graph-mode maps
do not: the time the same op takes on a scalar, where the work is nil, is
taken as that and subtracted. The first call of each op for a stage's
element structure sets the call up (milliseconds) and is not timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from plumber.records.profile import Compression
from plumber.tf.written import WrittenStage

#: Elements of each stage put through compress and uncompress.
ELEMENTS = 4

#: Calls on a scalar whose median CPU time is taken as an eager call's dispatch.
CALIBRATION_CALLS = 21


def measure_compression(stages: Sequence[WrittenStage], budget_s: float) -> dict[str, Compression]:
    """A sample per stage, within about ``budget_s`` in all; a stage whose prefix yields no
    element in its share, or whose elements the ops refuse, is left out."""
    if not stages or budget_s <= 0:
        return {}
    from tensorflow.python.data.experimental.ops import compression_ops

    dispatch = _dispatch_s(compression_ops)
    share_s = budget_s / len(stages)
    samples = {}
    for stage in stages:
        elements = _first_elements(stage.dataset, share_s)
        if elements:
            try:
                samples[stage.id] = _sample(compression_ops, stage.dataset.element_spec,
                                            elements, dispatch)
            except Exception:  # noqa: BLE001 - an element the ops refuse stays unmeasured
                continue
    return samples


def _dispatch_s(ops: Any) -> tuple[float, float]:
    """The median CPU seconds of compressing and of uncompressing a scalar: the calls' own
    cost, with next to no work in them."""
    import tensorflow as tf

    scalar = tf.constant(0)
    spec = tf.TensorSpec.from_tensor(scalar)
    packed = ops.compress(scalar)
    compress, uncompress = [], []
    for _ in range(CALIBRATION_CALLS):
        start = time.thread_time()
        packed = ops.compress(scalar)
        compress.append(time.thread_time() - start)
        start = time.thread_time()
        ops.uncompress(packed, spec)
        uncompress.append(time.thread_time() - start)
    return statistics.median(compress), statistics.median(uncompress)


def _first_elements(dataset: Any, within_s: float) -> list[Any]:
    """Up to :data:`ELEMENTS` elements of ``dataset``, as many as come within ``within_s``."""
    deadline = time.perf_counter() + within_s
    elements: list[Any] = []
    try:
        for element in dataset:
            elements.append(element)
            if len(elements) >= ELEMENTS or time.perf_counter() > deadline:
                break
    except Exception:  # noqa: BLE001 - an empty or failing prefix is just unmeasured
        return []
    return elements


def _sample(ops: Any, spec: Any, elements: list[Any],
            dispatch: tuple[float, float]) -> Compression:
    import tensorflow as tf

    # The first call of each op for an element structure sets the call up (~ms): not timed.
    ops.uncompress(ops.compress(elements[0]), spec)
    raw = compressed = 0
    compress_s = uncompress_s = 0.0
    for element in elements:
        raw += sum(_tensor_bytes(t) for t in tf.nest.flatten(element, expand_composites=True))
        start = time.thread_time()
        packed = ops.compress(element)
        compress_s += time.thread_time() - start
        compressed += len(tf.io.serialize_tensor(packed).numpy())
        start = time.thread_time()
        ops.uncompress(packed, spec)
        uncompress_s += time.thread_time() - start
    calls = len(elements)
    return Compression(calls, raw, compressed, max(0.0, compress_s - calls * dispatch[0]),
                       max(0.0, uncompress_s - calls * dispatch[1]))


def _tensor_bytes(tensor: Any) -> int:
    """The bytes a tensor holds: its strings' lengths, or its buffer's size."""
    import numpy as np

    if tensor.dtype.name == "string":
        return sum(len(v) for v in np.asarray(tensor.numpy(), dtype=object).flat)
    return int(tensor.numpy().nbytes)
