"""What was alive on entry is frozen out of garbage collection until thawed, and only then
(tests/integration/test_gc_freeze.py runs scripts under it)."""

from __future__ import annotations

import gc

import pytest

from plumber.capture.gcfreeze import OwnObjectsFrozen


@pytest.fixture(autouse=True)
def _nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


def test_what_was_alive_is_frozen_until_thawed_once():
    with OwnObjectsFrozen() as frozen:
        assert frozen.active and gc.get_freeze_count() > 0
        frozen.thaw()
        assert gc.get_freeze_count() == 0
        frozen.thaw()
        assert not frozen.active
    assert gc.get_freeze_count() == 0


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
