"""How each stage's elements compress as tf.data service would send them, and at what CPU.

``distribute`` with its default compression (``AUTO``, TF 2.21
``data_service_ops``) maps the workers' output through ``compress`` and the
training process uncompresses what arrives. The bytes that cross the
network, and the CPU the training process spends receiving them, depend on
how well the elements compress, so the offload model needs it per cut.
The per-stage CPU probe (:mod:`plumber.tf.cpuprobe`) hands over the first
few elements each stage's prefix yielded as it read it after the script,
and :class:`CompressionSampler` puts them through the same two ops; their
sizes and the CPU each op took (on the calling thread, where TF runs them
inline) are recorded. No prefix is read again for it. Called eagerly,
each op also pays Python's dispatch, which the service's graph-mode maps
do not: the time the same op takes on a scalar, where the work is nil, is
taken as that and subtracted. The first call of each op for a stage's
element structure sets the call up (milliseconds) and is not timed.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from plumber.records.profile import Compression
from plumber.tf.written import WrittenStage

#: Elements of each stage put through compress and uncompress.
ELEMENTS = 4

#: Calls on a scalar whose median CPU time is taken as an eager call's dispatch.
CALIBRATION_CALLS = 21


class CompressionSampler:
    """Takes the elements the CPU probe read of each stage (``on_elements`` of
    :func:`plumber.tf.cpuprobe.measure_prefixes`) and keeps, for the stages in
    ``wanted``, how they compressed; a stage whose elements the ops refuse is left out."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        #: By stage id, how its elements compressed.
        self.samples: dict[str, Compression] = {}
        self._dispatch: tuple[float, float] | None = None

    def __call__(self, stage: WrittenStage, elements: list[Any]) -> None:
        if stage.id not in self.wanted or not elements:
            return
        from tensorflow.python.data.experimental.ops import compression_ops

        try:
            if self._dispatch is None:
                self._dispatch = _dispatch_s(compression_ops)
            self.samples[stage.id] = _sample(compression_ops, stage.dataset.element_spec,
                                             elements, self._dispatch)
        except Exception:  # noqa: BLE001 - an element the ops refuse stays unmeasured
            return


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
