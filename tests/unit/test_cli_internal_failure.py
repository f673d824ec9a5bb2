"""An exception out of plumber's own code ends the command with exit 70, not Python's 1."""

import pytest

from plumber import cli
from plumber.commands.report import ReportCommand
from plumber.records import exitcodes


def test_an_exception_inside_a_command_is_an_internal_failure(tmp_path, monkeypatch, capsys):
    def failing_run(self, args):
        raise RuntimeError("a bug in plumber")

    monkeypatch.setattr(ReportCommand, "run", failing_run)
    code = cli.main(["report", str(tmp_path / "profile.json")])
    err = capsys.readouterr().err
    assert code == exitcodes.INTERNAL == 70
    assert "Traceback" in err and "RuntimeError: a bug in plumber" in err
    assert err.rstrip().splitlines()[-1].startswith("plumber: internal error in 'plumber report'")


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_stop_is_not_taken_for_a_bug(tmp_path, monkeypatch, stop):
    """Ctrl-C and an explicit exit keep their own meaning (130, the given status)."""
    def stopping_run(self, args):
        raise stop()

    monkeypatch.setattr(ReportCommand, "run", stopping_run)
    with pytest.raises(stop):
        cli.main(["report", str(tmp_path / "profile.json")])
