"""Synthetic profiles of one job's hosts, each with a planted difference.

``host_profile`` builds the profile one host of a data-parallel job would
write: a source, a CPU-heavy map, a batch and a prefetch, read by a training
loop. Its arguments plant what may differ between hosts: the map's time
per element, its parallelism, the machine's cores, the step's time and how
long the loop waited for data.
"""

from __future__ import annotations

import dataclasses

from synthetic_profiles import make_profile, stage

from plumber.records.profile import Profile

ELEMENTS = 1000
BATCHES = 100


def host_profile(
    map_s: float = 0.004,
    *,
    parallelism: int = 2,
    cores: float = 4.0,
    step_s: float = 1.0,
    wait_s: float | None = None,
    batch_s: float = 0.001,
    framework: str = "tensorflow",
) -> Profile:
    """One host's profile: ``map_s`` seconds of CPU per element in ``map-0``.

    By default the loop waited for data as long as the map's work over its
    parallelism took, so the observed rate follows the map.
    """
    wait = map_s * ELEMENTS / parallelism if wait_s is None else wait_s
    profile = make_profile(
        stage("source-0", "source", ELEMENTS, 0.2, line=10),
        stage("map-0", "map", ELEMENTS, map_s * ELEMENTS, parallelism=parallelism,
              knobs={"parallelism": parallelism}, line=11),
        stage("batch-0", "batch", BATCHES, batch_s * BATCHES, line=12),
        stage("prefetch-0", "prefetch", BATCHES, 0.01, line=13),
        wait_s=wait, step_s=step_s, steps=BATCHES, cores=cores,
    )
    return dataclasses.replace(
        profile, run=dataclasses.replace(profile.run, framework=framework))
