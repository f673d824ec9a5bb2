"""Run a callback the moment a module finishes importing, for as long as a context lasts.

Framework hooks are installed lazily: profiling a torch script must not
import TensorFlow (seconds of start-up, gigabytes of address space) and a
tf.data script must not import torch. :class:`ImportWatch` installs a
``sys.meta_path`` finder that lets the normal finders locate the watched
module, then runs the callback right after the module's own code has run,
inside the user's ``import`` statement, before the script can use it.
Modules already imported when the watch starts get their callback at once.
Leaving the context removes the finder; a callback never runs twice, and
never in a forked child (a DataLoader worker inherits ``sys.meta_path``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


class ImportWatch(importlib.abc.MetaPathFinder):
    """Context manager calling ``callbacks[name]`` once module ``name`` is imported."""

    def __init__(self, callbacks: dict[str, Callable[[], None]]) -> None:
        self._pending = dict(callbacks)
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __enter__(self) -> ImportWatch:
        for name in list(self._pending):
            if name in sys.modules:
                self._fire(name)
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self._pending.clear()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec the other finders give, with a loader that calls back after loading."""
        if fullname not in self._pending or os.getpid() != self._pid:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _CallbackLoader(spec.loader, lambda: self._fire(fullname))
        return spec

    def _fire(self, name: str) -> None:
        with self._lock:
            callback = self._pending.pop(name, None)
        if callback is not None:
            callback()


class _CallbackLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the callback once the module is executed.

    The module keeps the real loader as ``__loader__`` and ``__spec__.loader``,
    so nothing of plumber stays in it.
    """

    def __init__(self, loader: Any, callback: Callable[[], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._callback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
