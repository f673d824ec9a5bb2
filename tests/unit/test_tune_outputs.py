"""``plumber tune`` whose output folder fills up after the check at start ends in one line.

The outputs are checked before the script runs, but a disk can fill during
the minutes a tune takes. Each of its writes (the profile, the report, the
plan, the report again with the plan) is made to fail with ENOSPC in turn:
tune says which file in one line, names what was saved, and exits 2 as
``profile`` does, instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import pathlib

import pytest

from plumber.cli import main
from plumber.records import exitcodes


def fail_write(monkeypatch: pytest.MonkeyPatch, name: str, nth: int) -> None:
    """The ``nth`` write of a file called ``name`` raises ENOSPC; other writes go through.

    plumber writes its files through a temporary ``NAME.PID-RANDOM.tmp`` beside them
    (:func:`plumber.records.files.write_text_atomically`): that write fails.
    """
    real = pathlib.Path.write_text
    seen = []

    def write_text(self, *args, **kwargs):
        if self.name.startswith(f"{name}.") and self.name.endswith(".tmp"):
            seen.append(self)
            if len(seen) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)


@pytest.mark.parametrize(("name", "nth", "said", "saved"), [
    ("profile.json", 1, "the profile could not be written: [Errno 28]", None),
    ("report.html", 1, "the report could not be written ([Errno 28]", "profile.json"),
    ("plan.json", 1, "the plan could not be written ([Errno 28]", "profile.json"),
    ("report.html", 2, "the report could not be written with the plan ([Errno 28]",
     "plan.json"),
])
def test_a_write_that_fails_after_the_run_is_one_line_and_exit_2(
        tmp_path, monkeypatch, capsys, name, nth, said, saved):
    monkeypatch.setenv("PLUMBER_CACHE_DIR", str(tmp_path / "cache"))
    fail_write(monkeypatch, name, nth)
    script = tmp_path / "train.py"
    script.write_text("print('trained')\n")
    out = tmp_path / "out"
    code = main(["tune", "--cpu-probe", "0", "-o", str(out / "plan.json"), str(script)])
    err = capsys.readouterr().err
    assert code == exitcodes.USAGE
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert line.startswith(f"plumber: error: {said}")
    assert not list(out.glob(f"{name}.*.tmp"))
    if saved is not None:
        assert (out / saved).is_file() and str(out / saved) in line
