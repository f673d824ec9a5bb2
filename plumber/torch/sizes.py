"""Sizes and short descriptions of the values a DataLoader stage produces.

Bytes per element let the analysis size caches and spot stages that blow
data up (a decode) or shrink it (a crop). Only what is cheap to read is
counted: tensor and array ``nbytes``, a PIL image's pixel bytes, the length
of ``bytes``, summed through lists, tuples and dicts; anything else is 0.
"""

from __future__ import annotations

from typing import Any

#: How deep containers are followed (a batch of (image, label) pairs is depth 2).
_MAX_DEPTH = 4


def nbytes_of(value: Any, depth: int = 0) -> int:
    """Bytes held by ``value`` where they are cheap to know, else 0."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(nbytes_of(v, depth + 1) for v in value) if depth < _MAX_DEPTH else 0
    if isinstance(value, dict):
        return sum(nbytes_of(v, depth + 1) for v in value.values()) if depth < _MAX_DEPTH else 0
    if isinstance(value, (int, float, str, bool)) or value is None:
        return 0
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    getbands = getattr(value, "getbands", None)
    if callable(getbands):  # a PIL image: decoded pixel bytes
        try:
            return int(value.width) * int(value.height) * len(getbands())
        except (AttributeError, TypeError, ValueError):
            return 0
    return 0


def describe(value: Any, depth: int = 0) -> str:
    """A one-line description of a batch: ``(Tensor[32, 3, 64, 64] float32, Tensor[32] int64)``."""
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v, depth + 1) for v in value[:8])
        more = ", ..." if len(value) > 8 else ""
        return f"({inner}{more})" if isinstance(value, tuple) else f"[{inner}{more}]"
    if isinstance(value, dict):
        items = list(value.items())[:8]
        return "{" + ", ".join(f"{k!s}: {describe(v, depth + 1)}" for k, v in items) + "}"
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        dims = ", ".join(str(int(d)) for d in shape)
        return f"{type(value).__name__}[{dims}] {str(dtype).removeprefix('torch.')}"
    return type(value).__name__
