"""Atomic writes: each goes through a temporary file of its own beside the target."""

from __future__ import annotations

import os
import pathlib

from plumber.records.files import write_text_atomically


def test_each_write_has_a_temporary_name_of_its_own(tmp_path, monkeypatch):
    real = pathlib.Path.replace
    temporaries = []

    def replace(self, target):
        temporaries.append(self.name)
        return real(self, target)

    monkeypatch.setattr(pathlib.Path, "replace", replace)
    target = tmp_path / "profile.json"
    write_text_atomically(target, "first")
    write_text_atomically(target, "second")
    assert target.read_text() == "second"
    assert len(set(temporaries)) == 2
    assert all(name.startswith(f"profile.json.{os.getpid()}-") and name.endswith(".tmp")
               for name in temporaries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.json"]
