"""The rules every value of a plan file must meet, checked when the plan is loaded.

A plan is JSON a user may edit, copy from elsewhere or receive; its values
reach ``num_parallel_calls``, TF's private thread pool, ``prefetch``,
``cache`` and a DataLoader's constructor. Unchecked, ``"threads": 1000000``
makes TF build a million-thread pool and ``"parallelism": "abc"`` crashes the
user's script inside TF. So each value is checked here for its type and
range before any script runs, and a bad one is a :class:`PlanError` with a
one-line reason naming the stage and the value.

The limits are far above anything ``plumber tune`` writes (at most 64 calls
in flight per stage, prefetch depths up to 64) and relative to the machine:
parallelism and workers at most 64 per logical core, a thread pool at most
that and never below 1024 threads (tune sizes the pool for every waiting
stage together), a prefetch at most 4096 elements.

Cache locations (``cache``, ``object_cache``) are ``"memory"`` or a path. A
relative path is taken inside plumber's data cache folder
(:func:`plumber.records.folders.data_cache_dir`) and may not leave it, so a plan
cannot aim a cache at ``../../.ssh``; ``~`` is the user's home; an absolute
path is used as written (tune writes absolute paths; a user may choose any
folder they can write).
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plumber.records.kinds import AUTOTUNE, LOADER_ROOTS

#: The cache location that keeps data in memory (tf.data's ``cache("")``).
MEMORY = "memory"
#: Calls in flight (parallelism, workers, threads) allowed per logical core.
PER_CORE = 64
#: The thread pool may always be this large: tune sizes it for all waiting stages at once.
MIN_THREADS_LIMIT = 1024
#: The deepest prefetch (elements; for a DataLoader batches per worker) a plan may ask for.
MAX_PREFETCH = 4096

#: The keys a stage's setting may have.
SETTING_KEYS = frozenset({
    "stage", "stage_id", "parallelism", "cache", "prefetch", "threads", "persistent_workers",
    "pin_memory", "object_cache", "reason", "predicted_rate",
})


class PlanError(ValueError):
    """A plan file that cannot be used: unreadable, malformed, too new or out of range."""


def parallelism_limit(cores: int) -> int:
    """The most calls in flight (or DataLoader workers) one stage may have on ``cores`` cores."""
    return PER_CORE * max(cores, 1)


def threads_limit(cores: int) -> int:
    """The largest private thread pool a plan may give a pipeline on ``cores`` cores."""
    return max(parallelism_limit(cores), MIN_THREADS_LIMIT)


def stage_ref_values(data: Any, where: str) -> dict[str, Any]:
    """A :class:`~plumber.records.plan.StageRef`'s fields from JSON, checked."""
    _keys(data, where, {"file", "line", "kind", "occurrence"}, {"file", "line", "kind"})
    return {
        "file": text(data["file"], f"{where}: file"),
        "line": integer(data["line"], f"{where}: line", 0, None),
        "kind": text(data["kind"], f"{where}: kind"),
        "occurrence": integer(data.get("occurrence", 0), f"{where}: occurrence", 0, None),
    }


def setting_values(
    data: Mapping[str, Any], stage: Any, cores: int, cache_folder: Path
) -> dict[str, Any]:
    """A stage setting's knobs from JSON, checked; ``stage`` is its already checked ref.

    A DataLoader's own stages (``workers``, ``pin_memory``) take
    ``parallelism`` as ``num_workers`` (0 or more); a tf.data stage takes
    ``num_parallel_calls`` (AUTOTUNE or 1 or more). Relative cache paths
    come back inside ``cache_folder``.
    """
    stage_id = text(data.get("stage_id"), f"{stage}: stage_id")
    where = f"{stage} ({stage_id})"
    limit = parallelism_limit(cores)
    pool = stage_id in LOADER_ROOTS
    return {
        "stage_id": stage_id,
        "parallelism": integer(data.get("parallelism"), f"{where}: parallelism",
                               0 if pool else 1, limit, autotune=not pool, optional=True),
        "prefetch": integer(data.get("prefetch"), f"{where}: prefetch", 0, MAX_PREFETCH,
                            autotune=True, optional=True),
        "threads": integer(data.get("threads"), f"{where}: threads", 0, threads_limit(cores),
                           optional=True),
        "cache": cache_location(data.get("cache"), f"{where}: cache", cache_folder),
        "object_cache": cache_location(data.get("object_cache"), f"{where}: object_cache",
                                       cache_folder),
        "persistent_workers": flag(data.get("persistent_workers"),
                                   f"{where}: persistent_workers"),
        "pin_memory": flag(data.get("pin_memory"), f"{where}: pin_memory"),
        "reason": text(data.get("reason", ""), f"{where}: reason"),
        "predicted_rate": number(data.get("predicted_rate"), f"{where}: predicted_rate"),
    }


def check_setting_keys(data: Any, where: str) -> None:
    """A setting is an object with a stage and no key this plumber does not know."""
    _keys(data, where, SETTING_KEYS, {"stage", "stage_id"})


def integer(
    value: Any,
    what: str,
    low: int,
    high: int | None,
    *,
    autotune: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` if an integer from ``low`` to ``high`` (or AUTOTUNE, or null, when allowed)."""
    if value is None and optional:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and (low <= value and (high is None or value <= high)
                   or autotune and value == AUTOTUNE):
        return value
    span = f"from {low}" if high is None else f"from {low} to {high}"
    allowed = f"-1 (AUTOTUNE) or an integer {span}" if autotune else f"an integer {span}"
    raise PlanError(f"{what} must be {allowed}, not {_shown(value)}")


def flag(value: Any, what: str) -> bool | None:
    """``value`` if it is true, false or null."""
    if value is None or isinstance(value, bool):
        return value
    raise PlanError(f"{what} must be true or false, not {_shown(value)}")


def number(value: Any, what: str) -> float | int | None:
    """``value`` if it is a number or null (rates, for the record and the report)."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise PlanError(f"{what} must be a number or null, not {_shown(value)}")


def numbers(value: Any, what: str) -> tuple[float | int | None, ...]:
    """``value`` as a tuple if it is a list of numbers (or nulls)."""
    if isinstance(value, list):
        try:
            return tuple(number(v, what) for v in value)
        except PlanError:
            pass
    raise PlanError(f"{what} must be a list of numbers, not {_shown(value)}")


def text(value: Any, what: str) -> str:
    """``value`` if it is a string."""
    if isinstance(value, str):
        return value
    raise PlanError(f"{what} must be a string, not {_shown(value)}")


def optional_text(value: Any, what: str) -> str | None:
    """``value`` if it is a string or null."""
    return None if value is None else text(value, what)


def texts(value: Any, what: str) -> tuple[str, ...]:
    """``value`` as a tuple if it is a list of strings."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PlanError(f"{what} must be a list of strings, not {_shown(value)}")


def items(value: Any, what: str) -> list[Any]:
    """``value`` if it is a list."""
    if isinstance(value, list):
        return value
    raise PlanError(f"{what} must be a list, not {_shown(value)}")


def cache_location(value: Any, what: str, folder: Path) -> str | None:
    """``"memory"``, an absolute path, or a relative one resolved inside ``folder``; or null."""
    if value is None or value == MEMORY:
        return value
    if not isinstance(value, str) or not value or "\0" in value:
        raise PlanError(f'{what} must be "memory" or a path, not {_shown(value)}')
    path = os.path.expanduser(value)
    if os.path.isabs(path):
        return path
    inside = os.path.normpath(path)
    if inside == os.curdir or inside == os.pardir or inside.startswith(os.pardir + os.sep):
        raise PlanError(f"{what} {value!r} leaves plumber's cache folder {folder}: a relative "
                        f"cache path is taken inside it; give an absolute path to cache "
                        f"elsewhere")
    return str(folder / inside)


def _keys(data: Any, where: str, known: set[str] | frozenset[str], required: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise PlanError(f"{where} must be an object, not {_shown(data)}")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise PlanError(f"{where} has unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(data))
    if missing:
        raise PlanError(f"{where} lacks {', '.join(missing)}")


def _shown(value: Any) -> str:
    """A short, one-line rendering of a bad value for the error message."""
    return reprlib.repr(value)
