"""The Python functions each tf.data stage calls while it runs: the bodies of its py_functions.

A tf.data stage runs TF ops in C++; only ``tf.py_function``,
``tf.numpy_function`` (``PyFunc`` ops) and ``Dataset.from_generator`` (built
on them) call back into Python, on tf.data's own threads. Each such op holds
a token naming the Python callable TF registered for it
(``script_ops._py_funcs``). Reading the ops of a stage's functions (nested
ones included) gives the callables, and their code objects give the file
and line range a sampled frame must fall in to be that stage's
(:class:`plumber.records.profile.StageCode`, used by ``--hotspots``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from plumber.records.profile import StageCode
from plumber.tf.pipelines import _productive
from plumber.tf.written import read_written

#: Op types that call a registered Python function.
PY_FUNC_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

#: How many wrappers around a registered callable are looked through.
_MAX_WRAPPERS = 8


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
                        last_line=max((line for *_, line in code.co_lines() if line),
                                      default=code.co_firstlineno),
                    ))
    return tuple(found)


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
    if code is None:  # a callable object: its class's __call__
        code = getattr(vars(type(target)).get("__call__"), "__code__", None)
    return code
