"""What is alive as a watched package begins to import is frozen out of garbage collection
until another begins to import, and only then (tests/integration/test_gc_freeze.py runs
scripts under it)."""

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
def packages(tmp_path, monkeypatch):
    """Two packages whose own code records how many objects were frozen as it ran."""
    names = ("freezing_pkg", "thawing_pkg")
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            "import gc\nFROZEN_AS_IMPORTED = gc.get_freeze_count()\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for name in names:
        sys.modules.pop(name, None)


def test_nothing_is_frozen_until_the_package_that_freezes_begins_to_import(packages):
    freezing, thawing = packages
    with OwnObjectsFrozen(freeze_on=(freezing,), thaw_on=(thawing,)) as frozen:
        importlib.import_module("json.decoder")
        assert gc.get_freeze_count() == 0
        assert importlib.import_module(freezing).FROZEN_AS_IMPORTED > 0
        assert frozen.active
    assert gc.get_freeze_count() == 0
    assert frozen not in sys.meta_path


def test_the_package_that_thaws_is_imported_after_the_thaw_and_nothing_freezes_again(packages):
    freezing, thawing = packages
    with OwnObjectsFrozen(freeze_on=(freezing,), thaw_on=(thawing,)) as frozen:
        frozen.freeze()
        assert gc.get_freeze_count() > 0
        assert importlib.import_module(thawing).FROZEN_AS_IMPORTED == 0
        importlib.import_module(freezing)
        assert not frozen.active and gc.get_freeze_count() == 0


def test_the_hook_finds_nothing_and_the_next_finder_loads_the_package(packages):
    freezing, thawing = packages
    with OwnObjectsFrozen(freeze_on=(freezing,), thaw_on=(thawing,)) as frozen:
        assert frozen.find_spec(freezing, None) is None
        assert importlib.import_module(freezing).__spec__.loader is not frozen


def test_a_forked_child_neither_freezes_nor_thaws(packages):
    freezing, thawing = packages
    with OwnObjectsFrozen(freeze_on=(freezing,), thaw_on=(thawing,)) as frozen:
        frozen.freeze()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a DataLoader worker inherits the hook; the package is imported there
            seen = importlib.import_module(thawing).FROZEN_AS_IMPORTED
            os.write(write, str(seen).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(child, 0)
        assert int(os.read(read, 64)) > 0
        os.close(read)
        assert frozen.active and gc.get_freeze_count() > 0


def test_a_package_that_freezes_imported_already_freezes_on_entry(packages):
    freezing, thawing = packages
    importlib.import_module(freezing)
    with OwnObjectsFrozen(freeze_on=(freezing,), thaw_on=(thawing,)) as frozen:
        assert frozen.active and gc.get_freeze_count() > 0


def test_nothing_is_frozen_when_the_package_that_thaws_is_imported_already(packages):
    freezing, thawing = packages
    importlib.import_module(thawing)
    with OwnObjectsFrozen(freeze_on=(freezing,), thaw_on=(thawing,)) as frozen:
        importlib.import_module(freezing)
        assert not frozen.active and gc.get_freeze_count() == 0


def test_objects_frozen_by_someone_else_stay_frozen():
    # Another thread of the process may free a frozen object meanwhile, so the count
    # can fall by a few; thawing them (gc.unfreeze) would empty it.
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with OwnObjectsFrozen() as frozen:
            frozen.freeze()
            assert not frozen.active
            frozen.thaw()
            assert gc.get_freeze_count() > before // 2
        assert gc.get_freeze_count() > before // 2
    finally:
        gc.unfreeze()


def test_nothing_is_frozen_when_collection_is_off():
    gc.disable()
    with OwnObjectsFrozen() as frozen:
        frozen.freeze()
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()
