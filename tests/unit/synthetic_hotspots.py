"""Synthetic py-spy samples of a DataLoader run, for the hotspots analysis and report tests.

A loader with two transforms (torchvision's ``RandomResizedCrop``, the
user's ``to_tensor_slowly``) in two workers; the stacks below are what
py-spy records in a worker's stages, its idle loop, and the main thread.
"""

from __future__ import annotations

import dataclasses

from synthetic_profiles import loader_profile

from plumber.measure.hotspots import RawStack, python_samples
from plumber.records.profile import Profile, PyFrame

PY = "/usr/lib/python3.11"
SITE = f"{PY}/site-packages"
PLUMBER = "/src/plumber"
ROOTS = (PY, SITE, PLUMBER)
USER = "/home/me/train.py"
WORKERSIDE = f"{PLUMBER}/torch/workerside.py"
MAIN, WORKER = 500, 1001


def _frames(*specs: tuple[str, str, int]) -> tuple[PyFrame, ...]:
    return tuple(PyFrame(*spec) for spec in specs)


FORK = _frames(("<module>", USER, 40),
               ("BaseProcess._bootstrap", f"{PY}/multiprocessing/process.py", 314),
               ("_worker_loop", f"{SITE}/torch/utils/data/_utils/worker.py", 375))
FETCH = (*FORK, PyFrame("_timed_fetch", WORKERSIDE, 380),
         PyFrame("_MapDatasetFetcher.fetch", f"{SITE}/torch/utils/data/_utils/fetch.py", 54),
         PyFrame("Images.__getitem__", USER, 20))
CROP = (*FETCH, PyFrame("TimedTransform.__call__", WORKERSIDE, 262),
        PyFrame("Module._wrapped_call_impl", f"{SITE}/torch/nn/modules/module.py", 1736),
        PyFrame("RandomResizedCrop.forward", f"{SITE}/torchvision/transforms/transforms.py", 9))
TENSOR = (*FETCH, PyFrame("TimedTransform.__call__", WORKERSIDE, 262),
          PyFrame("to_tensor_slowly", USER, 30),
          PyFrame("asarray", f"{SITE}/numpy/core/numeric.py", 5))
COLLATE = (*FORK, PyFrame("_timed_collate", WORKERSIDE, 420), PyFrame("my_collate", USER, 50))
IDLE = (*FORK, PyFrame("Queue.get", f"{PY}/multiprocessing/queues.py", 113),
        PyFrame("Connection._poll", f"{PY}/multiprocessing/connection.py", 440))
LOOP = _frames(("_run", f"{PLUMBER}/capture/scriptrun.py", 90), ("<module>", USER, 44),
               ("train_step", USER, 60))
WAIT = _frames(("_run", f"{PLUMBER}/capture/scriptrun.py", 90), ("<module>", USER, 43),
               ("__next__", f"{PLUMBER}/torch/hooks.py", 230),
               ("_BaseDataLoaderIter.__next__", f"{SITE}/torch/utils/data/dataloader.py", 700))
IMPORT = _frames(("<module>", USER, 2), ("_find_and_load", "<frozen importlib._bootstrap>", 1))


def sampled_profile(*stacks: tuple[int, int, tuple[PyFrame, ...], int],
                    fetch_s: float = 0.001) -> Profile:
    """The loader's profile with these (pid, tid, frames, samples) stacks sampled.

    As plumber's timing in the workers measured it, ``to_tensor_slowly``
    (transform_1) is the busiest stage, unless ``fetch_s`` (seconds a sample)
    makes it the fetch.
    """
    base = loader_profile((fetch_s, fetch_s), (("RandomResizedCrop", 0.01, 0.01, True),
                                              ("to_tensor_slowly", 0.02, 0.02, False)),
                          num_workers=2, wait_s=1.0, step_s=1.0, worker_rss=1)
    raw = [RawStack((MAIN,) if pid == MAIN else (MAIN, pid), tid, frames, count)
           for pid, tid, frames, count in stacks]
    return dataclasses.replace(
        base, hotspots=python_samples(raw, MAIN, 100, "py-spy 0.4.3", ROOTS))
