"""plumber's own objects kept out of the profiled script's garbage collections.

Python runs a full collection when the objects that survived the last one
have grown by a quarter. plumber's modules and objects count among them,
so under ``plumber profile`` the script's full collections fall due at
other moments than under ``python SCRIPT``: one that a plain torch script
makes while importing torch came in a DataLoader's first epoch instead,
where it cost about 150 ms (BENCHMARKS.md, hotspots overhead). Collected
and frozen (``gc.freeze``) before the script starts, plumber's objects are
never traversed and no longer move those moments.

The freeze ends when the script imports TensorFlow: with it, a tf.data
custom training loop's step measured more CPU per batch and the run was
called step-bound where it was input-bound without (f7a7e05), and why is
not known, so a TensorFlow script runs with the garbage collector as it
was. Left alone where something else froze objects already, or collection
is off; everything is unfrozen at the end.
"""

from __future__ import annotations

import gc
from types import TracebackType


class OwnObjectsFrozen:
    """While active, what was alive on entry is left out of garbage collections."""

    def __init__(self) -> None:
        self.active = False

    def __enter__(self) -> OwnObjectsFrozen:
        if gc.get_freeze_count() == 0 and gc.isenabled():
            gc.collect()
            gc.freeze()
            self.active = True
        return self

    def thaw(self) -> None:
        """Give the frozen objects back to the collector (once; later calls do nothing)."""
        if self.active:
            gc.unfreeze()
            self.active = False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.thaw()
