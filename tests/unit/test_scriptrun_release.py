"""What a failed script's frames hold is released as its run ends, not left to the cyclic GC.

A DataLoader iterator left to the collector cannot stop its workers in order
and waits 5 s on each (torch's re-raise of a worker's error keeps the error
in its frame, which makes the cycle). Each test runs with the collector off,
so what is released was released by the run's end itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import textwrap

import pytest

from plumber.capture.scriptrun import run_script


@pytest.fixture
def no_cyclic_gc():
    enabled = gc.isenabled()
    gc.disable()
    yield
    if enabled:
        gc.enable()


@pytest.mark.usefixtures("no_cyclic_gc")
def test_an_exception_its_frame_keeps_does_not_keep_what_the_frames_held(tmp_path):
    released = tmp_path / "released"
    script = tmp_path / "fails.py"
    script.write_text(textwrap.dedent(f"""
        class Held:
            def __del__(self):
                open({str(released)!r}, "w").close()

        def fail():
            held = Held()
            try:
                raise ValueError("boom")
            except ValueError as err:
                kept = err  # the frame keeps its own exception: a cycle
                raise kept from None

        fail()
    """))
    outcome = run_script(script, [], lambda exc: False)
    assert outcome.exit_status == 1 and outcome.error == "ValueError: boom"
    assert released.exists()


def alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it has exited
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.usefixtures("no_cyclic_gc")
def test_the_workers_of_a_loader_whose_worker_raised_have_stopped_when_the_run_ends(tmp_path):
    pytest.importorskip("torch")
    pids = tmp_path / "pids"
    script = tmp_path / "worker_fails.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from torch.utils.data import DataLoader, Dataset

        class Missing(Dataset):
            def __len__(self):
                return 64

            def __getitem__(self, index):
                if index >= 16:
                    raise FileNotFoundError(index)
                return index

        def note_pid(worker_id):
            with open({str(pids)!r}, "a") as out:
                out.write(f"{{os.getpid()}}\\n")

        for batch in DataLoader(Missing(), batch_size=4, num_workers=2,
                                worker_init_fn=note_pid):
            pass
    """))
    outcome = run_script(script, [], lambda exc: False)
    assert outcome.exit_status == 1 and "FileNotFoundError" in (outcome.error or "")
    workers = [int(line) for line in pids.read_text().split()]
    assert len(workers) == 2
    assert not any(alive(pid) for pid in workers)
