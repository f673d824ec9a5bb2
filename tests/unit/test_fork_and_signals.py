"""SIGTERM and SIGHUP stop the script like Ctrl-C; forked children and plumber's exit codes."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

from plumber.capture.scriptrun import run_script
from plumber.measure.runbounds import ScriptStopper, Terminated, remembering_interrupts
from plumber.records import exitcodes


@pytest.fixture
def default_termination():
    """SIGTERM and SIGHUP at their defaults for the test (the suite may run under nohup)."""
    previous = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def swallowed(raise_into_main) -> None:
    """Let an exception raised asynchronously into this thread be lost, as in a ``__del__``."""
    try:
        raise_into_main()
        for _ in range(1000):  # give the pending signal a bytecode to land on
            pass
    except (KeyboardInterrupt, Terminated):
        pass


@pytest.mark.usefixtures("default_termination")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_termination_signal_stops_the_block_and_the_default_comes_back(signum, status):
    with pytest.raises(Terminated) as stopped, remembering_interrupts():
        os.kill(os.getpid(), signum)
        for _ in range(1000):
            pass
    assert stopped.value.signum == signum and stopped.value.exit_status == status
    assert signal.getsignal(signum) is signal.SIG_DFL


@pytest.mark.usefixtures("default_termination")
def test_a_lost_termination_is_raised_again_once():
    stopper = ScriptStopper()
    with remembering_interrupts():
        swallowed(lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(Terminated, match="SIGTERM"):
            stopper.reraise_lost()
        stopper.reraise_lost()  # once: a script that catches it may go on


def test_an_ignored_or_own_termination_handler_is_left_alone():
    def own(signum, frame):
        pass

    previous = {signal.SIGHUP: signal.signal(signal.SIGHUP, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, own)}
    try:
        with remembering_interrupts():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is own
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.usefixtures("default_termination")
def test_a_forked_child_dies_of_sigterm_as_without_plumber():
    """A DataLoader worker or the script's own child does not inherit plumber's handler."""
    with remembering_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write_end, b"default" if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
                     else b"plumber's")
            os._exit(0)
        os.close(write_end)
        seen = os.read(read_end, 64)
        os.close(read_end)
        os.waitpid(pid, 0)
    assert seen == b"default"


@pytest.mark.usefixtures("default_termination")
def test_a_terminated_script_is_an_outcome_not_an_exception(tmp_path):
    script = tmp_path / "terminated.py"
    script.write_text(textwrap.dedent("""
        import os, signal, time
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    """))
    outcome = run_script(script, [], lambda exc: False)
    assert outcome.exit_status == 143 and outcome.interrupted
    assert outcome.error == "terminated (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_plumbers_internal_failure_code_is_not_one_a_script_uses(tmp_path, monkeypatch, capsys):
    """A failing report exits 70 (EX_SOFTWARE), which ``os._exit(3)`` in a script cannot mimic."""
    import plumber.reports.outputs
    from plumber.cli import main

    def failing_render(*args, **kwargs):
        raise RuntimeError("report bug")

    monkeypatch.setenv("PLUMBER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(plumber.reports.outputs, "render", failing_render)
    script = tmp_path / "fine.py"
    script.write_text("pass\n")
    code = main(["profile", "--cpu-probe", "0", "-o", str(tmp_path / "out"), str(script)])
    assert code == exitcodes.INTERNAL == 70
    assert (tmp_path / "out" / "profile.json").is_file()
    assert "the profile is saved at" in capsys.readouterr().err


@pytest.mark.usefixtures("default_termination")
@pytest.mark.parametrize(("ending", "stop"), [
    ("os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)", Terminated),
    ("raise KeyboardInterrupt", KeyboardInterrupt),
])
def test_a_measuring_run_stopped_from_outside_stops_the_measuring(tmp_path, ending, stop):
    """tune's verification and search: a stopped run is no measurement, and tune must end."""
    from plumber.capture.session import SessionOptions
    from plumber.tuner.verify import measured_rates

    options = SessionOptions(cpu_probe_s=0, net_probe_s=0, capacity_cache_dir=str(tmp_path))
    finished = tmp_path / "finished.py"
    finished.write_text("pass\n")
    assert measured_rates(finished, [], options) == ()
    stopped = tmp_path / "stopped.py"
    stopped.write_text(f"import os, signal, time\n{ending}\n")
    with pytest.raises(stop):
        measured_rates(stopped, [], options)
