"""The consumer of a loop inside a compiled function (Keras ``fit``), read from TF's model."""

from __future__ import annotations

import pytest

from plumber.tf.hooks import IteratorWatch
from plumber.tf.modelstats import ModelAccumulator, NodeStats
from plumber.tf.pipelines import _consumer


def _watch(gaps_ms: list[float], elements: int) -> IteratorWatch:
    model = ModelAccumulator(output=1, gap_times_us=[int(g * 1000) for g in gaps_ms])
    model.nodes[1] = NodeStats(id=1, name="Prefetch", elements=elements)
    return IteratorWatch(pipeline_key=0, created_at=0.0, model=model, last_progress_at=2.0)


def test_the_steady_step_of_a_compiled_loop_is_the_median_gap():
    # An epoch's first gap is the compiled step's first run: on this machine 63-71 ms
    # where the other 14 took about 10 ms. The mean, 14 ms, would put the step's bound
    # at 71/s; under load that first gap grew enough to make the step bind in CI.
    first_epoch = _watch([70.0] + [10.0] * 14, elements=16)
    second_epoch = _watch([10.0] * 15, elements=16)
    consumer, active = _consumer([first_epoch, second_epoch], None)
    assert consumer.source == "tf_model_gaps"
    assert consumer.step_median_s == pytest.approx(0.010)
    assert consumer.step_s == pytest.approx(32 * (70.0 + 29 * 10.0) / 30 * 1e-3)
    assert consumer.wait_s == pytest.approx(active - consumer.step_s)


def test_no_recorded_gap_leaves_the_median_unset():
    consumer, _ = _consumer([_watch([], elements=16)], None)
    assert consumer.step_median_s is None
    assert consumer.step_s == 0.0
