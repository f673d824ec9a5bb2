"""Steady windows: steps, seconds, waiting and process CPU after each iterator's first step."""

from __future__ import annotations

import time

import pytest

from plumber.measure.steady import SteadyWindow, steady_of


def test_the_first_step_opens_the_window_and_is_not_counted():
    window = SteadyWindow()
    window.step(10.0, 0.0)
    assert window.steps == 0
    window.step(10.5, 0.0)
    window.step(11.0, 0.0)
    assert window.steps == 2
    steady = steady_of([window])
    assert steady is not None
    assert steady.steps == 2
    assert steady.seconds == pytest.approx(1.0)


def test_windows_of_several_iterators_add_up_and_empty_ones_are_left_out():
    first, second, peeked = SteadyWindow(), SteadyWindow(), SteadyWindow()
    for now in (0.0, 1.0, 2.0):
        first.step(now, 0.0)
    for now in (5.0, 5.5):
        second.step(now, 0.0)
    peeked.step(9.0, 0.0)
    steady = steady_of([first, second, peeked])
    assert steady is not None
    assert (steady.steps, steady.seconds) == (3, pytest.approx(2.5))


def test_the_window_counts_the_waiting_between_its_marks_not_the_start_ups():
    # GIVEN a first step after 3 s of waiting for the pipeline to start, then two steps
    # each after 0.1 s of waiting, and a second iterator that waited 2 s to start
    first, second = SteadyWindow(), SteadyWindow()
    first.step(3.0, 3.0)
    first.step(4.0, 3.1)
    first.step(5.0, 3.2)
    second.step(7.0, 2.0)
    second.step(8.0, 2.5)
    steady = steady_of([first, second])
    # THEN the steady windows waited 0.2 s and 0.5 s of their 3 s
    assert steady is not None
    assert steady.wait_s == pytest.approx(0.7)
    assert steady.seconds == pytest.approx(3.0)


def test_marks_from_a_model_count_the_steps_it_reports():
    window = SteadyWindow()
    window.mark(4, 1.0, 0.0)
    window.mark(12, 3.0, 0.0)
    assert window.steps == 8


def test_the_window_measures_this_process_cpu():
    window = SteadyWindow()
    window.step(time.perf_counter(), 0.0)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    window.step(time.perf_counter(), 0.0)
    steady = steady_of([window])
    assert steady is not None
    assert steady.cpu_s >= 0.05


def test_an_iterator_that_never_passed_its_start_up_gives_zero_steady_steps():
    window = SteadyWindow()
    window.step(1.0, 0.0)
    steady = steady_of([window])
    assert steady is not None and (steady.steps, steady.seconds) == (0, 0.0)
    assert steady_of([]) is None


def test_a_window_opens_once_the_batches_asked_for_at_the_start_are_delivered():
    # GIVEN 4 batches asked for at the start, delivered in a burst, then one a second
    # until the workers, handed nothing new, finish the last 3 in a burst too
    window = SteadyWindow(opens_at=4)
    for now in (5.0, 5.1, 5.2, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 11.1, 11.2, 11.3):
        window.step(now, 0.0)
    steady = steady_of([window])
    # THEN the window runs from the 4th delivery to the 9th: 5 steps in 5 s
    assert steady is not None
    assert (steady.steps, steady.seconds) == (5, pytest.approx(5.0))
    short = SteadyWindow(opens_at=32)
    for now in range(24):
        short.step(float(now), 0.0)
    assert steady_of([short]).steps == 0


def test_a_loader_opens_its_window_after_workers_times_prefetch_factor_batches():
    from torch.utils.data import DataLoader

    from plumber.torch.hooks import batches_asked_at_start

    assert batches_asked_at_start(iter(DataLoader(list(range(8)), num_workers=0))) == 1
    pooled = iter(DataLoader(list(range(8)), num_workers=2, prefetch_factor=3))
    assert batches_asked_at_start(pooled) == 6
    del pooled


def test_windows_are_placed_on_the_samples_clock_in_the_order_they_opened():
    origin = time.monotonic()
    early, late = SteadyWindow(), SteadyWindow()
    early.step(0.0, 0.0)
    late.step(0.0, 0.0)
    early.step(1.0, 0.0)
    late.step(1.0, 0.0)
    late.step(2.0, 0.0)
    after = time.monotonic() - origin
    steady = steady_of([late, early], clock_origin=origin)
    assert steady is not None
    assert [span.steps for span in steady.spans] == [1, 2]
    for span in steady.spans:
        assert 0.0 <= span.start_s <= span.end_s <= after
    assert steady.spans[0].start_s <= steady.spans[1].start_s


def test_without_the_samples_clock_no_window_is_placed():
    window = SteadyWindow()
    window.step(1.0, 0.0)
    window.step(2.0, 0.0)
    steady = steady_of([window])
    assert steady is not None and steady.spans == ()
