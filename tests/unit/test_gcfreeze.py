"""What was alive on entry is frozen out of garbage collection until a watched package
begins to import, and only then (tests/integration/test_gc_freeze.py runs scripts under it)."""

from __future__ import annotations

import gc
import importlib
import os
import sys

import pytest

from plumber.capture.gcfreeze import OwnObjectsFrozen


@pytest.fixture(autouse=True)
def _nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package whose own code records how many objects were frozen as it ran."""
    (tmp_path / "frozenwatched").mkdir()
    (tmp_path / "frozenwatched" / "__init__.py").write_text(
        "import gc\nFROZEN_AS_IMPORTED = gc.get_freeze_count()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "frozenwatched"
    sys.modules.pop("frozenwatched", None)


def test_what_was_alive_is_frozen_until_thawed_once():
    with OwnObjectsFrozen() as frozen:
        assert frozen.active and gc.get_freeze_count() > 0
        frozen.thaw()
        assert gc.get_freeze_count() == 0
        frozen.thaw()
        assert not frozen.active
    assert gc.get_freeze_count() == 0
    assert frozen not in sys.meta_path


def test_a_watched_package_is_imported_after_the_thaw_and_others_frozen(package):
    with OwnObjectsFrozen(thaw_on=(package,)) as frozen:
        importlib.import_module("json.decoder")
        assert gc.get_freeze_count() > 0
        module = importlib.import_module(package)
        assert module.FROZEN_AS_IMPORTED == 0
        assert not frozen.active


def test_the_hook_finds_nothing_and_the_next_finder_loads_the_package(package):
    with OwnObjectsFrozen(thaw_on=(package,)) as frozen:
        assert frozen.find_spec(package, None) is None
        assert importlib.import_module(package).__spec__.loader is not frozen


def test_a_forked_child_does_not_thaw(package):
    with OwnObjectsFrozen(thaw_on=(package,)) as frozen:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a DataLoader worker inherits the hook; the package is imported there
            seen = importlib.import_module(package).FROZEN_AS_IMPORTED
            os.write(write, str(seen).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(child, 0)
        assert int(os.read(read, 64)) > 0
        os.close(read)
        assert frozen.active and gc.get_freeze_count() > 0


def test_nothing_is_frozen_when_the_package_is_already_imported(package):
    importlib.import_module(package)
    with OwnObjectsFrozen(thaw_on=(package,)) as frozen:
        assert not frozen.active and gc.get_freeze_count() == 0
        assert frozen not in sys.meta_path


def test_objects_frozen_by_someone_else_stay_frozen():
    gc.freeze()
    before = gc.get_freeze_count()
    assert before > 0
    with OwnObjectsFrozen() as frozen:
        assert not frozen.active
        frozen.thaw()
        assert gc.get_freeze_count() == before
    assert gc.get_freeze_count() == before


def test_nothing_is_frozen_when_collection_is_off():
    gc.disable()
    with OwnObjectsFrozen():
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()
