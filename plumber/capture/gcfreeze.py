"""plumber's own objects kept out of a torch script's garbage collections.

Python runs a full collection when the objects that survived the last one
have grown by a quarter. plumber's modules and objects count among them,
so under ``plumber profile`` the script's full collections fall due at
other moments than under ``python SCRIPT``: a torch script made one more,
of about 150 ms, in its DataLoader's epochs (benchmarks/gc_collections.py).
Frozen (``gc.freeze``) as the script begins to import torch, what is alive
then (plumber's objects, and the few the script made before the import) is
never traversed and no longer moves those moments: the script then made
as many full collections as plain.

Nothing is frozen for a script that never imports torch, and the freeze
ends as the script begins to import TensorFlow, before any of
TensorFlow's code runs. A freeze there moved what tf.data scripts
measured: frozen for a whole script (f7a7e05), or until TensorFlow's
import had finished (dcb8b5e), a custom training loop measured more CPU
per step and was called step-bound where it was input-bound without; even
a freeze ended as TensorFlow began to import left a tf.data script one
full collection fewer than plain. Left alone where something else froze
objects already, or collection is off; only the process that froze acts on
the imports (a DataLoader worker inherits the hook); everything is unfrozen
at the end.
"""

from __future__ import annotations

import gc
import importlib.abc
import os
import sys
from collections.abc import Sequence
from types import ModuleType


class OwnObjectsFrozen(importlib.abc.MetaPathFinder):
    """While active, an import hook that freezes and thaws at imports, and finds nothing.

    Asked for a module of one of ``freeze_on``'s packages, it freezes what
    is alive (at once, on entry, where one is imported already); asked for
    one of ``thaw_on``'s, it thaws for good. Either way the other finders
    load the module.
    """

    def __init__(
        self, freeze_on: Sequence[str] = ("torch",), thaw_on: Sequence[str] = ("tensorflow",)
    ) -> None:
        self.freeze_on = frozenset(freeze_on)
        self.thaw_on = frozenset(thaw_on)
        self.active = False
        self._done = False
        self._pid = os.getpid()

    def __enter__(self) -> OwnObjectsFrozen:
        sys.meta_path.insert(0, self)
        if any(name in sys.modules for name in self.thaw_on):
            self._done = True
        elif any(name in sys.modules for name in self.freeze_on):
            self.freeze()
        return self

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        """Freeze or thaw before a watched package loads; never find anything."""
        if os.getpid() != self._pid:
            return
        package = fullname.partition(".")[0]
        if package in self.thaw_on:
            self.thaw()
        elif package in self.freeze_on:
            self.freeze()

    def freeze(self) -> None:
        """Freeze what is alive, once, unless thawed already or the collector is not ours."""
        if self._done or self.active or gc.get_freeze_count() > 0 or not gc.isenabled():
            return
        gc.freeze()
        self.active = True

    def thaw(self) -> None:
        """Give the frozen objects back to the collector; no freeze after it.

        The hook stays in ``sys.meta_path`` until the context ends: removed
        while the import system walks that list, it would skip the next finder.
        """
        self._done = True
        if self.active:
            gc.unfreeze()
            self.active = False

    def __exit__(self, *exc: object) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.thaw()
