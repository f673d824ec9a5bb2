"""The Python functions each tf.data stage calls while it runs: the bodies of its py_functions.

A tf.data stage runs TF ops in C++; only ``tf.py_function``,
``tf.numpy_function`` (``PyFunc`` ops) and ``Dataset.from_generator`` (built
on them) call back into Python, on tf.data's own threads. Each such op holds
a token naming the Python callable TF registered for it
(``script_ops._py_funcs``). Reading the ops of a stage's functions (nested
ones included) gives the callables, and their code objects give the file
and line range a sampled frame must fall in to be that stage's
(:class:`plumber.records.profile.StageCode`, used by ``--hotspots``).

A body defined inside the function given to ``map`` is converted with it by
AutoGraph and runs as generated code in a file of its own; AutoGraph's
source map (kept by its transpiler with the generated module) gives the
user's line for each generated line, recorded so that the hotspots name the
user's file and line, not the generated ones.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

from plumber.records.profile import SourceLine, StageCode
from plumber.tf.pipelines import _productive
from plumber.tf.written import read_written

#: Op types that call a registered Python function.
PY_FUNC_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

#: How many wrappers around a registered callable are looked through.
_MAX_WRAPPERS = 8

#: How the files of AutoGraph's generated code are named (``/tmp/__autograph_generated_file…``).
AUTOGRAPH_FILE_PREFIX = "__autograph_generated_file"


def stage_python_code(hooks: Any) -> tuple[StageCode, ...]:
    """The Python functions the stages of every profiled pipeline call, with their code ranges.

    Pipelines are numbered as :func:`plumber.tf.pipelines.build_pipelines`
    numbers them. A stage whose functions call no Python has none.
    """
    from tensorflow.python.ops import script_ops

    found: list[StageCode] = []
    productive = [p for p in hooks.pipelines.values() if _productive(p)]
    for index, watched in enumerate(productive):
        written = read_written(watched.dataset, hooks.source_of)
        for stage in written.walk():
            for token in _py_func_tokens(stage.dataset):
                code = _code_of(script_ops._py_funcs.get(token))
                if code is not None:
                    found.append(StageCode(
                        pipeline=f"pipeline-{index}", stage=stage.id,
                        function=getattr(code, "co_qualname", code.co_name), file=code.co_filename,
                        first_line=code.co_firstlineno,
                        last_line=_last_line(code), generated_from=_generated_from(code),
                    ))
    return tuple(found)


def _last_line(code: Any) -> int:
    """The last line ``code`` runs (its first when it runs none)."""
    return max((line for *_, line in code.co_lines() if line), default=code.co_firstlineno)


def _generated_from(code: Any) -> tuple[SourceLine, ...]:
    """For code AutoGraph generated, the user's line of each of its lines; () for other code.

    A generated line the source map does not name (AutoGraph's own
    scaffolding) takes the user's line of the nearest named line above it.
    """
    file = code.co_filename
    if not os.path.basename(file).startswith(AUTOGRAPH_FILE_PREFIX):
        return ()
    origins = _autograph_source_map(file)
    lines: list[SourceLine] = []
    origin = None
    for line in range(code.co_firstlineno, _last_line(code) + 1):
        origin = origins.get(line, origin)
        if origin is not None:
            lines.append(SourceLine(line, *origin))
    return tuple(lines)


def _autograph_source_map(file: str) -> dict[int, tuple[str, int, str]]:
    """Line of the generated ``file`` -> (user's file, line, function), from AutoGraph's cache.

    Empty when TensorFlow keeps no such map (another version's internals).
    """
    try:
        from tensorflow.python.autograph.impl import api

        per_function = list(api._TRANSPILER._cache._cache.values())
    except (ImportError, AttributeError):
        return {}
    for factories in per_function:
        for factory in list(factories.values()):
            if getattr(getattr(factory, "module", None), "__file__", None) != file:
                continue
            return {loc.lineno: (origin.loc.filename, origin.loc.lineno,
                                 origin.function_name or "")
                    for loc, origin in (factory.source_map or {}).items()
                    if loc.filename == file}
    return {}


def _py_func_tokens(dataset: Any) -> Iterator[str]:
    """The tokens of the Python-calling ops in the functions ``dataset`` holds."""
    pending = [wrapper.function.graph for wrapper in vars(dataset).values()
               if hasattr(getattr(wrapper, "function", None), "graph")]
    seen: set[int] = set()
    while pending:
        graph = pending.pop()
        if id(graph) in seen:
            continue
        seen.add(id(graph))
        for op in graph.get_operations():
            if op.type in PY_FUNC_OPS:
                yield op.get_attr("token").decode()
        pending.extend(inner.graph for inner in getattr(graph, "_functions", {}).values()
                       if hasattr(inner, "graph"))


def _code_of(registered: Any) -> Any:
    """The code object of a registered callable, unwrapped (an ``EagerFunc`` holds it in ``_func``,
    autograph wraps it with ``functools.wraps``)."""
    target = getattr(registered, "_func", registered)
    for _ in range(_MAX_WRAPPERS):  # autograph's do_not_convert wrapper, partials
        if isinstance(target, functools.partial):
            target = target.func
        elif getattr(target, "__wrapped__", None) is not None:
            target = target.__wrapped__
        else:
            break
    code = getattr(target, "__code__", None)
    if code is None:  # a callable object: its class's __call__, inherited or its own
        call = next((vars(cls)["__call__"] for cls in type(target).__mro__
                     if "__call__" in vars(cls)), None)
        code = getattr(call, "__code__", None)
    return code
