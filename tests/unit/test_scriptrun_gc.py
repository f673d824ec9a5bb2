"""The script runs with plumber's own objects frozen out of garbage collection, and only then."""

from __future__ import annotations

import gc
import textwrap

import pytest

from plumber.capture.scriptrun import own_objects_frozen, run_script


@pytest.fixture(autouse=True)
def _nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


def test_the_script_sees_plumbers_objects_frozen_and_they_are_unfrozen_after(tmp_path):
    seen = tmp_path / "seen.txt"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import gc
        open({str(seen)!r}, "w").write(str(gc.get_freeze_count()))
    """))
    outcome = run_script(script, [], lambda exc: False)
    assert outcome.exit_status == 0
    assert int(seen.read_text()) > 0
    assert gc.get_freeze_count() == 0


def test_objects_frozen_by_someone_else_stay_frozen():
    gc.freeze()
    before = gc.get_freeze_count()
    assert before > 0
    with own_objects_frozen():
        assert gc.get_freeze_count() == before
    assert gc.get_freeze_count() == before


def test_nothing_is_frozen_when_collection_is_off():
    gc.disable()
    with own_objects_frozen():
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()
