"""``plumber.profile(dataset)``: profile a tf.data pipeline or a DataLoader in this process.

The profiling is :func:`plumber.capture.inprocess.profile_pipeline`, which
``plumber.optimize`` shares; this returns its record with the analysis.
"""

from __future__ import annotations

from typing import Any

from plumber.capture.inprocess import DEFAULT_DURATION_S, profile_pipeline
from plumber.notebook.result import ProfileResult

__all__ = ["DEFAULT_DURATION_S", "profile"]


def profile(
    dataset: Any,
    steps: int | None = None,
    duration: float | None = None,
    cpu_probe: float = 2.0,
    hotspots: bool | int = False,
    link_bandwidth: str | None = None,
) -> ProfileResult:
    """Profile a tf.data pipeline or a torch DataLoader and return its analysed profile.

    ``dataset`` is a ``tf.data.Dataset``, a ``torch.utils.data.DataLoader``,
    or a function with no arguments that builds either: built under
    plumber's hooks, its stages keep the source lines that built them (a
    DataLoader built earlier is named by the line calling this function).
    ``steps`` bounds the root elements (batches) taken, ``duration`` the
    seconds spent; with neither, the profile runs :data:`DEFAULT_DURATION_S`
    seconds or until the data ends (one epoch of a DataLoader).
    ``cpu_probe`` is the time spent afterwards measuring each tf.data
    stage's CPU (0 disables it; a DataLoader's CPU is measured as it runs).
    ``hotspots`` samples the Python stacks with py-spy meanwhile, as
    ``plumber profile --hotspots`` does (``ProfileResult.hotspots``); a
    number instead of True is the samples per second per thread
    (``--hotspots-rate``).
    ``link_bandwidth`` (``"10Gb/s"``, ``"100Mbit/s"``, ``"1.25GB/s"``) is the
    network's rate to hosts that could run the pipeline's work, as
    ``--link-bandwidth`` gives it: the offload what-if divides the bytes
    crossing at its cut by it instead of a probed or assumed rate.

    Errors raised by the pipeline propagate (the hooks are removed first);
    Ctrl-C stops the loop and returns what was profiled, marked interrupted.
    Raises TypeError for anything but a tf.data dataset or a DataLoader, or
    a ``link_bandwidth`` that is not a string, and ValueError for a bad
    bound or rate.
    """
    return ProfileResult(
        profile_pipeline(dataset, steps, duration, cpu_probe, hotspots, link_bandwidth)
    )
