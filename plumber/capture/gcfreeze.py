"""plumber's own objects kept out of the profiled script's garbage collections.

Python runs a full collection when the objects that survived the last one
have grown by a quarter. plumber's modules and objects count among them,
so under ``plumber profile`` the script's full collections fall due at
other moments than under ``python SCRIPT``: one that a plain torch script
makes while importing torch came in a DataLoader's first epoch instead,
where it cost about 150 ms (BENCHMARKS.md, hotspots overhead). Collected
and frozen (``gc.freeze``) before the script starts, plumber's objects are
never traversed and no longer move those moments.

The freeze ends as the script begins to import TensorFlow, before any of
TensorFlow's code runs: frozen for the whole script (f7a7e05), or until
TensorFlow's import had finished (dcb8b5e), a tf.data custom training
loop measured more CPU per step and was called step-bound where it was
input-bound without, and why is not known. Left alone where something else
froze objects already, where collection is off, or where TensorFlow is
already imported; only the process that froze thaws (a DataLoader worker
inherits the import hook); everything is unfrozen at the end.
"""

from __future__ import annotations

import gc
import importlib.abc
import os
import sys
from collections.abc import Sequence
from types import ModuleType


class OwnObjectsFrozen(importlib.abc.MetaPathFinder):
    """While active, what was alive on entry is left out of garbage collections.

    Also an import hook that finds nothing: asked for a module of one of
    ``thaw_on``'s packages, it thaws first and lets the other finders load it.
    """

    def __init__(self, thaw_on: Sequence[str] = ("tensorflow",)) -> None:
        self.thaw_on = frozenset(thaw_on)
        self.active = False
        self._pid = os.getpid()

    def __enter__(self) -> OwnObjectsFrozen:
        imported = any(name in sys.modules for name in self.thaw_on)
        if gc.get_freeze_count() == 0 and gc.isenabled() and not imported:
            gc.collect()
            gc.freeze()
            self.active = True
            sys.meta_path.insert(0, self)
        return self

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        """Thaw before a watched package loads; never find anything."""
        if fullname.partition(".")[0] in self.thaw_on and os.getpid() == self._pid:
            self.thaw()

    def thaw(self) -> None:
        """Give the frozen objects back to the collector (once; later calls do nothing).

        The hook stays in ``sys.meta_path`` until the context ends: removed
        while the import system walks that list, it would skip the next finder.
        """
        if self.active:
            gc.unfreeze()
            self.active = False

    def __exit__(self, *exc: object) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.thaw()
