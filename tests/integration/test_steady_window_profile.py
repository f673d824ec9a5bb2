"""GIVEN a real torch script iterating a DataLoader for two epochs, WHEN it runs under
``plumber profile``, THEN each epoch's steady window is recorded on the resource samples'
clock, inside the sampled run, and the report shades it; the data stall is the steady
window's, like the verdict beside it."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from plumber.records.profile import Profile
from plumber.reports import format as fmt

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]

BATCHES = 20

SCRIPT = textwrap.dedent(f"""
    import time

    import torch
    from torch.utils.data import DataLoader, Dataset


    class Slow(Dataset):
        def __len__(self):
            return {BATCHES} * 8

        def __getitem__(self, index):
            time.sleep(0.004)
            return torch.full((4,), float(index))


    loader = DataLoader(Slow(), batch_size=8)
    for _epoch in range(2):
        for batch in loader:
            pass
""")


def test_each_epochs_steady_window_lies_inside_the_sampled_run(plumber_cli, tmp_path):
    script = tmp_path / "two_epochs.py"
    script.write_text(SCRIPT)
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    profile = Profile.load(run.profile_path)
    (pipeline,) = profile.pipelines
    consumer = pipeline.consumer
    assert consumer is not None
    spans = consumer.steady_spans
    assert len(spans) == 2  # one iterator per epoch
    assert [span.steps for span in spans] == [BATCHES - 1, BATCHES - 1]
    assert sum(span.steps for span in spans) == consumer.steady_steps
    assert sum(span.end_s - span.start_s for span in spans) == pytest.approx(
        consumer.steady_s, rel=0.02, abs=0.01
    )
    first, second = spans
    assert 0.0 < first.start_s < first.end_s <= second.start_s < second.end_s
    assert second.end_s <= profile.run.duration_s
    samples = profile.resources.t
    for span in spans:
        assert any(span.start_s < t <= span.end_s for t in samples), (span, samples)
    assert 'class="steady"' in run.report_path.read_text()


SLOW_START = textwrap.dedent("""
    import time

    import torch
    from torch.utils.data import DataLoader, Dataset


    class Cheap(Dataset):
        def __len__(self):
            return 240

        def __getitem__(self, index):
            return torch.full((4,), float(index))


    def start_slowly(worker_id):
        time.sleep(1.0)  # as spawned workers importing torch take a second or more


    loader = DataLoader(Cheap(), batch_size=4, num_workers=2, worker_init_fn=start_slowly)
    for _epoch in range(2):
        for batch in loader:
            time.sleep(0.02)  # the training step: far slower than the workers
""")


def test_a_slow_start_up_does_not_make_a_step_bound_loop_look_stalled(plumber_cli, tmp_path):
    script = tmp_path / "slow_start.py"
    script.write_text(SLOW_START)
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    consumer = Profile.load(run.profile_path).pipelines[0].consumer
    # THEN the workers' start-up, a second each epoch, is waiting of the whole run only
    assert consumer.steady_wait_s is not None
    assert consumer.run_stall_share > 0.4, consumer
    assert consumer.stall_share < 0.2, consumer
    # AND the summary gives the steady stall beside the verdict, and the whole run's too
    printed = " ".join((run.stdout + run.stderr).split())
    assert "not input-bound" in printed, printed
    steady, run_stall = fmt.fraction(consumer.stall_share), fmt.fraction(consumer.run_stall_share)
    assert (f"Data stall {steady} of the training loop's time waiting for data after start-up "
            f"({run_stall} with it)") in printed, printed
