"""Where a plan's settings can be applied: one table for derive and the appliers.

A plan is applied by ``plumber run --plan``, by ``plumber.optimize`` on a
function that builds the pipeline (both intercept the ``tf.data.Dataset``
methods of :data:`TF_METHODS` while the script builds its pipelines:
:mod:`plumber.tf.apply`), by ``plumber.optimize`` on a built dataset (which
rebuilds it: :mod:`plumber.tf.rebuild`, more permissive), and for a torch
DataLoader by rebuilding its constructor arguments
(:mod:`plumber.torch.settings`). ``derive`` plans a setting only at a stage
every one of them can find, so a plan ``tune`` writes is never reported as
"plan stage not found" where it is applied: a ``zip`` (a static method,
not intercepted) or a source (a constructor) gets no setting of its own.
Pure: no framework is imported (:mod:`plumber.torch.settings` imports
torch only when used).
"""

from __future__ import annotations

from plumber.records.kinds import CACHE_POINTS, LOADER_ROOTS
from plumber.records.profile import Pipeline, Stage

#: The tf.data ``Dataset`` methods the applier intercepts: the kind of stage
#: each builds and the argument that sets its parallelism (None: it has none).
TF_METHODS: dict[str, tuple[str, str | None]] = {
    "map": ("map", "num_parallel_calls"),
    "interleave": ("interleave", "num_parallel_calls"),
    "batch": ("batch", "num_parallel_calls"),
    "padded_batch": ("batch", None),
    "prefetch": ("prefetch", None),
    "flat_map": ("flat_map", None),
    "filter": ("filter", None),
    "shuffle": ("shuffle", None),
    "cache": ("cache", None),
    "repeat": ("repeat", None),
    "take": ("take", None),
    "skip": ("skip", None),
    "unbatch": ("unbatch", None),
    "with_options": ("config", None),
}

#: The tf.data stage kinds a plan can change.
TF_KINDS = frozenset(kind for kind, _ in TF_METHODS.values())


def appliable(pipeline: Pipeline, stage: Stage) -> bool:
    """Whether a plan setting at ``stage`` of ``pipeline`` finds its stage where applied.

    A stage the user wrote, at a source line, of a kind the appliers act on:
    in a DataLoader its pool (or pinning) stage, or a cache point; in a
    tf.data pipeline a stage built by one of :data:`TF_METHODS`.
    """
    if stage.source is None or not stage.written:
        return False
    if pipeline.is_loader:
        return stage.id in LOADER_ROOTS or CACHE_POINTS.fullmatch(stage.id) is not None
    return stage.kind in TF_KINDS
