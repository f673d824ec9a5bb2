"""Rebuilding the Profile record from parsed JSON, every value checked on the way.

A profile is a file a user may edit, truncate or receive from elsewhere, and
its numbers reach divisions, ``math.fsum`` and ``int()`` in the analysis. So
each value is checked against its field's type hint and range here, once,
and a bad one raises ``TypeError``/``ValueError`` naming its path in the
file (``pipelines[0].stages[2].stats.wall_time_s``), which
:meth:`plumber.records.profile.Profile.from_dict` turns into a one-line
``ProfileFormatError``.

The rules: every number is finite (plumber writes a non-finite one as
``null``) and at most :data:`MAX_MAGNITUDE` in size (no time, size, count or
rate comes near it, and larger ones overflow the arithmetic); times, sizes,
counts and rates are not negative, except the fields in :data:`LOWEST`; the
usable and logical cores are above zero. ``null`` in a number field that is
not optional reads as NaN: not measured, which the analysis handles.
Unknown keys are ignored (later writers of the same schema version add
fields with defaults).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

#: The largest number a profile may hold (int64's largest); beyond it sums overflow.
MAX_MAGNITUDE = 2**63 - 1

#: Numeric fields whose lowest allowed value is not 0 (``Class.field``: lowest).
LOWEST: dict[str, float] = {
    # A script may exit with any status (``sys.exit(-1)``).
    "RunInfo.exit_status": -MAX_MAGNITUDE,
    # Moments on the samples' clock, not durations: before its origin is not impossible.
    "SteadySpan.start_s": -MAX_MAGNITUDE,
    "SteadySpan.end_s": -MAX_MAGNITUDE,
    # -1 is tf.data's AUTOTUNE, as knobs write it.
    "StageStats.parallelism": -1,
    "StageStats.buffer_size": -1,
    # A machine has at least one core; zero usable cores would divide by zero.
    "Machine.cores_logical": 1,
}

#: Numeric fields that must be above (not equal to) their lowest value of 0.
ABOVE_ZERO = frozenset({"Machine.cores_usable", "Machine.link_bps"})


def build(tp: Any, data: Any, path: str) -> Any:
    """The dataclass ``tp`` rebuilt from ``data``, its fields converted and checked."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{path or 'the profile'} must be an object")
    hints = _hints(tp)
    kwargs = {}
    for f in dataclasses.fields(tp):
        where = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"{where} is missing")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], where, f"{tp.__name__}.{f.name}")
    return tp(**kwargs)


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _hints(tp: type) -> dict[str, Any]:
    if tp not in _HINT_CACHE:
        _HINT_CACHE[tp] = typing.get_type_hints(tp)
    return _HINT_CACHE[tp]


def _convert(hint: Any, value: Any, where: str, rule: str) -> Any:
    """``value`` as the type ``hint`` says, checked; ``rule`` names the field for :data:`LOWEST`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where, rule)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"{where} must be a list")
        inner = args[0] if args else Any
        return tuple(_convert(inner, v, f"{where}[{i}]", rule) for i, v in enumerate(value))
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise TypeError(f"{where} must be an object")
        inner = args[1] if len(args) == 2 else Any
        return {k: _convert(inner, v, f"{where}[{k!r}]", rule) for k, v in value.items()}
    if hint is float:
        return math.nan if value is None else _number(value, where, rule, float)
    if hint is int:
        return _number(value, where, rule, int)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a string")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{where} must be true or false")
        return value
    return _plain(value, where)


def _number(value: Any, where: str, rule: str, kind: type) -> Any:
    """A finite number of ``kind`` within the field's range."""
    integral = kind is int
    if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
        raise TypeError(f"{where} must be {'an integer' if integral else 'a number'}")
    _check_finite(value, where)
    lowest = LOWEST.get(rule, 0)
    if value < lowest or (rule in ABOVE_ZERO and value <= 0):
        bound = "above 0" if rule in ABOVE_ZERO else f"at least {lowest:g}"
        raise ValueError(f"{where} must be {bound}, got {_short(value)}")
    return kind(value)


def _plain(value: Any, where: str) -> Any:
    """Free-form JSON (knobs, GPU facts): any shape, but every number finite and bounded."""
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_finite(value, where)
    return value


def _check_finite(value: float, where: str) -> None:
    """Refuse NaN, an infinity, or a number too large for the analysis' arithmetic."""
    if not (isinstance(value, int) or math.isfinite(value)):
        raise ValueError(f"{where} must be a finite number, got {value}")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"{where} must be at most {MAX_MAGNITUDE:.3g} in size, "
                         f"got {_short(value)}")


def _short(value: Any) -> str:
    """A number as a short text: a 400-digit integer is not repeated in full."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"
