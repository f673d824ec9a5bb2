"""plumber's JSON files (profile, plan, gate baseline): one way to write them and read them.

Each record builds and checks its own value (``from_dict``); what the three
share is here. A value is written with every infinite or NaN float as
``null`` (JSON has neither, and ``null`` reads back as not measured or
unbounded), indented, atomically, ending with a newline. A file is read into
parsed JSON, and every way that can fail (a missing file, one that cannot
be read or is not UTF-8, invalid JSON, JSON nested too deeply for the
parser) becomes the record's own error with a one-line reason, and so does
a ``schema_version`` that is missing, unknown or newer than this plumber's
(:func:`checked_schema_version`, one wording for the three records).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plumber.records.files import write_text_atomically


def finite_or_none(value: float | None) -> float | None:
    """A number as a file stores it: JSON has no infinity or NaN, so those are null."""
    return value if value is None or math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """``value`` (dataclass dicts, lists, tuples) with string keys, lists, no non-finite float."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return finite_or_none(value)
    return value


def dumps(value: Any, indent: int | None = 1) -> str:
    """``value`` as JSON text (see :func:`jsonable`)."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)


def save_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as JSON to ``path`` atomically (temp file + rename); return the path."""
    return write_text_atomically(path, dumps(value) + "\n")


def read_json(path: str | Path, error: type[Exception], name: str, missing: str,
              not_json: str = "is not valid JSON") -> Any:
    """The parsed JSON of the file at ``path``; ``error`` with a one-line reason if it has none.

    ``name`` is the file as messages call it (``baseline PATH``), ``missing``
    the whole message for a file that does not exist (it may say how to make
    one), ``not_json`` what follows ``name`` when the text does not parse.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(missing) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {name}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{name} {not_json} ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise error(f"{name} {not_json} (nested too deeply)") from None


class SchemaVersionError(ValueError):
    """A record's ``schema_version`` this plumber cannot read.

    ``malformed`` when it is missing or not an integer (the file is not such
    a record), ``newer`` when a later plumber wrote it.
    """

    def __init__(self, message: str, malformed: bool = False, newer: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed
        self.newer = newer


def checked_schema_version(data: Mapping[str, Any], understood: int, what: str) -> int:
    """The ``schema_version`` of a record's parsed JSON, checked against ``understood``.

    ``what`` names the record (``profile``, ``plan``, ``baseline``). Raises
    :class:`SchemaVersionError` when the version is missing or not an
    integer, below 1, or above ``understood`` (``newer``: upgrade plumber).
    """
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaVersionError(f"{what} has no integer schema_version (got {version!r})",
                                 malformed=True)
    if version > understood:
        raise SchemaVersionError(
            f"{what} schema version {version} is newer than this plumber understands "
            f"({understood}); upgrade plumber", newer=True)
    if version < 1:
        raise SchemaVersionError(f"unknown {what} schema version {version}")
    return version
