"""The suite's import order, and which tests may share the machine when it runs on two workers.

One import order for the whole suite: torchvision before TensorFlow. The
suite runs tf.data and torch tests in one process. On this torch build,
importing torchvision after TensorFlow crashes the process (inside triton's
import), while the other order works; profiled scripts are not affected
(each framework is loaded only by a script that imports it).

The suite runs on pytest-xdist workers (``-n 2 --dist loadfile`` in
pyproject.toml). Most integration tests assert what plumber measured: a
bottleneck, a plan, a verdict, which another test's processes on the same
cores would change. Such a test runs *solo*: it holds the machine lock
exclusively, from its setup (a module's shared CLI run included) to its
teardown, so no other test runs beside it. A test marked ``alongside``
asserts nothing that depends on timing (exit statuses, messages, files,
outputs compared with a run as written) and shares the lock with others.
Tests under ``tests/unit`` are ``alongside`` unless marked ``solo``; the
rest are ``solo`` unless marked ``alongside``. A test's own marker wins
over its module's. Without xdist nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("torchvision") is not None:
    import torchvision  # noqa: F401

#: Folders whose tests may share the machine unless marked ``solo``.
ALONGSIDE_FOLDERS = frozenset({"unit"})


def runs_solo(item: pytest.Item) -> bool:
    """Whether ``item`` needs the machine to itself: its closest marker, else its folder's rule."""
    for marker in item.iter_markers():
        if marker.name in ("solo", "alongside"):
            return marker.name == "solo"
    tests = Path(__file__).parent
    folder = Path(str(item.path)).relative_to(tests).parts[0]
    return folder not in ALONGSIDE_FOLDERS


@contextlib.contextmanager
def machine_lock(folder: Path, solo: bool) -> Iterator[None]:
    """Hold the workers' machine lock: exclusively for a solo test, shared otherwise.

    A solo test waiting for the lock holds the turnstile, so tests that come
    after it wait too instead of keeping the lock shared for good.
    """
    with open(folder / "machine.turnstile", "a") as turnstile, \
            open(folder / "machine.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return (yield)
    # xdist gives each worker a base temporary folder inside the run's own one.
    run_folder = Path(item.config.getoption("basetemp")).parent
    with machine_lock(run_folder, runs_solo(item)):
        return (yield)
