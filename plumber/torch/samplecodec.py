"""How the sample cache writes a sample: as plain data where it can, pickled only where it must.

``pickle.loads`` runs whatever code its bytes name, so a cache entry read
with it is only as trustworthy as its folder. A sample made of plain types
is written so that reading it back executes nothing: a JSON outline of its
structure, then the raw bytes of its arrays. Plain types are torch tensors
(dense, on the CPU, without gradient or names), numpy arrays and scalars
(no object or structured dtype), ``bytes``, ``str``, ``int``, ``float``,
``bool``, ``None``, and tuples, lists and dicts of them (exact types: a
named tuple, an ``OrderedDict`` or a subclass is not plain). Any other
sample (a PIL image, a named tuple, a class of the user's) is pickled; the
caller reads those only from a folder it checked is private
(:mod:`plumber.caching.entrystore`).

Read back, a sample has the same types, dtypes, shapes and values; what
pickle would also keep and this does not: a tensor's or array's strides
(each is stored contiguous) and objects shared between two places of the
sample (each place gets its own copy).

Layout: :data:`PLAIN` (or :data:`PICKLED` then the pickle), the outline's
length as 8 bytes, the outline (``{"sample": node, "sizes": [bytes per
buffer]}``), the buffers one after another. A node is JSON's own null,
boolean, number, string or list (a Python list), or an object of one member
naming the type: ``{"tuple": [nodes]}``, ``{"dict": [[key, value], ...]}``,
``{"bytes": buffer}``, ``{"ndarray": [dtype, shape, buffer]}``,
``{"npscalar": [dtype, buffer]}``, ``{"tensor": [dtype, shape, buffer]}``.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import torch

PLAIN = b"plumber-sample-plain-1\n"
PICKLED = b"plumber-sample-pickle-1\n"

_LENGTH_BYTES = 8
_JSON_SCALARS = (str, int, float, bool)


class _NotPlain(Exception):
    """A part of the sample that the plain format does not hold."""


def dumps(sample: Any) -> bytes:
    """``sample`` as an entry's bytes: plain when every part of it is, else pickled."""
    buffers: list[bytes] = []
    try:
        outline = json.dumps({"sample": _encode(sample, buffers),
                              "sizes": [len(b) for b in buffers]}).encode()
    except (_NotPlain, RecursionError):
        return PICKLED + pickle.dumps(sample, protocol=5)
    return b"".join([PLAIN, len(outline).to_bytes(_LENGTH_BYTES, "little"), outline, *buffers])


def loads(payload: bytes) -> Any:
    """The sample in ``payload``; a pickled one only from a folder checked to be private.

    A plain entry that does not decode raises ValueError.
    """
    if payload.startswith(PICKLED):
        return pickle.loads(memoryview(payload)[len(PICKLED):])
    if not payload.startswith(PLAIN):
        raise ValueError("not a sample cache entry")
    try:
        return _load_plain(memoryview(payload)[len(PLAIN):])
    except (KeyError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
        raise ValueError(f"a damaged sample cache entry ({exc!r})") from exc


def _load_plain(payload: memoryview) -> Any:
    length = int.from_bytes(payload[:_LENGTH_BYTES], "little")
    outline = json.loads(bytes(payload[_LENGTH_BYTES:_LENGTH_BYTES + length]))
    buffers: list[bytearray] = []
    offset = _LENGTH_BYTES + length
    for size in outline["sizes"]:
        buffers.append(bytearray(payload[offset:offset + size]))  # writable, as pickle's are
        offset += size
    if offset != len(payload):
        raise ValueError("a sample cache entry of the wrong length")
    return _decode(outline["sample"], buffers)


def _encode(value: Any, buffers: list[bytes]) -> Any:
    kind = type(value)
    if value is None or kind in _JSON_SCALARS:
        return value
    if kind is list:
        return [_encode(item, buffers) for item in value]
    if kind is tuple:
        return {"tuple": [_encode(item, buffers) for item in value]}
    if kind is dict:
        return {"dict": [[_encode(k, buffers), _encode(v, buffers)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": _buffer(value, buffers)}
    if kind is torch.Tensor and _plain_tensor(value):
        flat = value.detach().resolve_conj().resolve_neg().contiguous().reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes()
        return {"tensor": [str(value.dtype), list(value.shape), _buffer(raw, buffers)]}
    if kind is np.ndarray and _plain_dtype(value.dtype):
        raw = np.ascontiguousarray(value).tobytes()
        return {"ndarray": [value.dtype.str, list(value.shape), _buffer(raw, buffers)]}
    if isinstance(value, np.generic) and kind is value.dtype.type and _plain_dtype(value.dtype):
        return {"npscalar": [value.dtype.str, _buffer(value.tobytes(), buffers)]}
    raise _NotPlain(kind.__name__)


def _plain_tensor(tensor: torch.Tensor) -> bool:
    return (tensor.layout == torch.strided and tensor.device.type == "cpu"
            and not tensor.requires_grad and not tensor.is_quantized and not tensor.is_nested
            and all(name is None for name in getattr(tensor, "names", ())))


def _plain_dtype(dtype: np.dtype) -> bool:
    return dtype.kind in "biufcmMSU" and dtype.fields is None and dtype.subdtype is None


def _plain_numpy_dtype(name: str) -> np.dtype:
    dtype = np.dtype(name)
    if not _plain_dtype(dtype):
        raise ValueError(f"{name} is not a plain numpy dtype")
    return dtype


def _buffer(raw: bytes, buffers: list[bytes]) -> int:
    buffers.append(raw)
    return len(buffers) - 1


def _decode(node: Any, buffers: list[bytearray]) -> Any:
    if isinstance(node, list):
        return [_decode(item, buffers) for item in node]
    if not isinstance(node, dict):
        return node
    ((kind, content),) = node.items()
    if kind == "tuple":
        return tuple(_decode(item, buffers) for item in content)
    if kind == "dict":
        return {_decode(k, buffers): _decode(v, buffers) for k, v in content}
    if kind == "bytes":
        return bytes(buffers[content])
    if kind == "tensor":
        name, shape, index = content
        dtype = getattr(torch, name.removeprefix("torch."))
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"{name} is not a torch dtype")
        if not buffers[index]:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buffers[index], dtype=dtype).reshape(shape)
    if kind == "ndarray":
        dtype_name, shape, index = content
        dtype = _plain_numpy_dtype(dtype_name)
        if not buffers[index]:
            return np.empty(shape, dtype=dtype)
        return np.frombuffer(buffers[index], dtype=dtype).reshape(shape)
    if kind == "npscalar":
        dtype_name, index = content
        return np.frombuffer(buffers[index], dtype=_plain_numpy_dtype(dtype_name))[0]
    raise ValueError(f"a sample cache entry holds an unknown {kind!r}")
