"""py-spy's raw stacks read into the profile, and attributed to stages and folded (--hotspots)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from synthetic_hotspots import (
    COLLATE,
    CROP,
    FETCH,
    FORK,
    IDLE,
    IMPORT,
    LOOP,
    MAIN,
    PLUMBER,
    PY,
    ROOTS,
    SITE,
    TENSOR,
    USER,
    WAIT,
    WORKER,
    _frames,
    sampled_profile,
)

from plumber.analyzers import hotspots as analysis
from plumber.analyzers.hotspots import CONSUMER, hotspots
from plumber.measure import hotspots as sampling
from plumber.measure.hotspots import (
    RawStack,
    StackSampler,
    checked_rate_hz,
    find_py_spy,
    parse_raw,
    python_samples,
)
from plumber.records.profile import (
    Profile,
    ProfileFormatError,
    PyFrame,
    SourceLine,
    StageCode,
)

RAW = (
    'process 500:"python -m plumber profile train.py";thread (500): MainThread;'
    '<module> (/home/me/train.py:40);step (/home/me/train.py:12) 7\n'
    'process 500:"python a;b.py";process 1001:"python a;b.py";thread (0x3e9);'
    'BaseProcess._bootstrap (/usr/lib/python3.11/multiprocessing/process.py:314);'
    'f (C:/odd:path/x.py:3) 2\n'
    "not a stack line\n"
)


def test_raw_lines_give_process_chain_thread_frames_and_count():
    first, second = parse_raw(RAW)
    assert first == RawStack((500,), 500, (PyFrame("<module>", USER, 40),
                                            PyFrame("step", USER, 12)), 7)
    assert second.pids == (500, 1001) and second.tid == 0x3E9 and second.samples == 2
    assert second.frames[-1] == PyFrame("f", "C:/odd:path/x.py", 3)


def test_samples_merge_identical_stacks_and_keep_the_most_sampled():
    frame = PyFrame("step", USER, 12)
    stacks = [RawStack((500,), 500, (frame,), 3), RawStack((500,), 500, (frame,), 4),
              RawStack((500, 1001), 1001, (PyFrame("g", USER, 1),), 2)]
    kept = python_samples(stacks, 500, 50, "py-spy 0.4.3", max_stacks=1)
    assert kept.samples == 9 and kept.dropped_samples == 2
    (only,) = kept.stacks
    assert (only.pid, only.samples, kept.frames[only.frames[0]]) == (500, 7, frame)
    both = python_samples(stacks, 500, 50, "py-spy")
    assert {s.pid for s in both.stacks} == {500, 1001}


def test_a_sampling_rate_is_a_whole_number_py_spy_takes():
    assert [checked_rate_hz(rate) for rate in (1, 20.0, 1000)] == [1, 20, 1000]
    for bad in (0, 2.5, 1001, True, "20", float("nan")):
        with pytest.raises(ValueError, match="from 1 to 1000"):
            checked_rate_hz(bad)


def test_a_missing_or_failing_py_spy_is_one_line_and_no_samples(tmp_path):
    missing = StackSampler(executable=str(tmp_path / "no-py-spy"))
    missing.start()
    assert missing.stop() is None and "could not be started" in missing.problem
    failing = tmp_path / "py-spy"
    ended = tmp_path / "ended"
    failing.write_text(
        "#!/bin/sh\ntrap '' INT\n"
        '[ "$1" = --version ] && echo "py-spy 0.4.0" && exit 0\n'
        "printf 'Error: Failed to attach.\\n\\nCaused by:\\n    0: Permission Denied (os error 1)"
        "\\n\\nStack backtrace:\\n   6: std::sys::thread::start\\n' >&2\n"
        f"touch {ended}\nexit 1\n"
    )
    failing.chmod(0o755)
    sampler = StackSampler(executable=str(failing))
    sampler.start()
    while not ended.exists():  # it fails on its own, before plumber stops it
        time.sleep(0.01)
    assert sampler.stop() is None
    assert sampler.problem == ("py-spy failed (exit status 1): Failed to attach. "
                               "(Permission Denied (os error 1))")  # not the backtrace's line


def test_python_older_than_3_11_is_said_unsupported_and_py_spy_not_started(monkeypatch):
    monkeypatch.setattr(sampling, "MIN_PYTHON", (99, 0))
    sampler = StackSampler()
    sampler.start()
    assert sampler.pid is None and sampler.stop() is None
    assert sampler.problem.startswith("Python 3.10 is not supported")


def test_the_py_spy_installed_with_this_python_comes_before_one_on_path(tmp_path, monkeypatch):
    scripts, elsewhere = tmp_path / "scripts", tmp_path / "elsewhere"
    for folder in (scripts, elsewhere):
        folder.mkdir()
        (folder / "py-spy").write_text("#!/bin/sh\n")
        (folder / "py-spy").chmod(0o755)
    monkeypatch.setenv("PATH", str(elsewhere))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(scripts))
    assert find_py_spy() == str(scripts / "py-spy")
    (scripts / "py-spy").chmod(0o644)
    assert find_py_spy() == str(elsewhere / "py-spy")
    (scripts / "py-spy").unlink()
    assert find_py_spy() == str(elsewhere / "py-spy")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_py_spy() is None


def test_worker_samples_go_to_the_stage_their_wrapper_names():
    profile = sampled_profile((WORKER, WORKER, FETCH, 3), (WORKER, WORKER, CROP, 5),
                              (WORKER, WORKER, TENSOR, 7), (WORKER, WORKER, COLLATE, 2),
                              (WORKER, WORKER, IDLE, 11), (WORKER, WORKER + 1, IDLE, 50))
    found = hotspots(profile)
    by_stage = {s.stage: s for s in found.stages}
    assert {k: s.samples for k, s in by_stage.items()} == {
        "fetch": 3, "transform_0": 5, "transform_1": 7, "collate": 2, "workers": 11}
    assert by_stage["workers"].idle_samples == 11 and by_stage["workers"].hottest is None
    assert found.unattributed_samples == 50  # a worker's own other thread
    spawned = sampled_profile((WORKER, WORKER, (*FORK, *IMPORT), 40), (WORKER, WORKER, IDLE, 2))
    (pool,) = hotspots(spawned).stages  # a spawned worker importing torch is its start-up
    assert (pool.stage, pool.samples, hotspots(spawned).unattributed_samples) == ("workers", 2, 40)
    tensor = by_stage["transform_1"].hottest
    assert (tensor.function, tensor.file, tensor.line) == ("to_tensor_slowly", USER, 30)
    assert tensor.library == "numpy asarray"
    assert by_stage["transform_1"].folded[0].labels == ("to_tensor_slowly (train.py:30)",
                                                        "numpy asarray")
    assert by_stage["transform_0"].hottest is None  # torchvision only: no user frame
    assert by_stage["transform_0"].folded[0].labels == (
        "torch Module._wrapped_call_impl → torchvision RandomResizedCrop.forward",)
    assert by_stage["transform_0"].hottest_call.call == by_stage["transform_0"].folded[0].labels[0]
    assert by_stage["collate"].hottest.function == "my_collate"
    fetch = by_stage["fetch"]
    assert fetch.folded[0].labels == ("torch _MapDatasetFetcher.fetch",
                                      "Images.__getitem__ (train.py:20)")
    assert all(s.pipeline == "loader-0" for s in found.stages)


def test_a_library_call_is_named_by_its_entry_and_the_library_it_spent_the_time_in():
    decode = (*FETCH[:-1],  # torch's fetcher, then torchvision's dataset and its PIL loader
              PyFrame("DatasetFolder.__getitem__", f"{SITE}/torchvision/datasets/folder.py", 245),
              PyFrame("pil_loader", f"{SITE}/torchvision/datasets/folder.py", 264),
              PyFrame("Image.convert", f"{SITE}/PIL/Image.py", 1067),
              PyFrame("ImageFile.load", f"{SITE}/PIL/ImageFile.py", 425))
    waiting = (*FETCH[:-1], PyFrame("Condition.wait", f"{PY}/threading.py", 320))
    profile = sampled_profile((WORKER, WORKER, decode, 9), (WORKER, WORKER, waiting, 12))
    (fetch,) = hotspots(profile).stages
    call = "torch _MapDatasetFetcher.fetch → PIL Image.convert"
    assert fetch.hottest is None and fetch.folded[1].labels == (call,)
    assert fetch.hottest_call == analysis.LibraryCall(call, 9)  # it computed; the wait did not
    assert [c.call for c in fetch.library_calls] == [call, "torch _MapDatasetFetcher.fetch → "
                                                           "threading Condition.wait"]
    assert analysis.innermost_call(call) == ("PIL", "Image.convert")
    assert analysis.innermost_call("numpy asarray") == ("numpy", "asarray")


def test_a_sample_in_plumbers_own_code_around_a_stage_is_not_the_stages():
    timing = TENSOR[:-2]  # the transform's timing lines, before it calls the transform
    sizing = (*timing, PyFrame("nbytes_of", f"{PLUMBER}/torch/sizes.py", 19))
    found = hotspots(sampled_profile((WORKER, WORKER, timing, 4), (WORKER, WORKER, sizing, 2),
                                     (WORKER, WORKER, TENSOR, 3)))
    (stage,) = found.stages
    assert (stage.stage, stage.samples, found.unattributed_samples) == ("transform_1", 3, 6)
    in_process = sampled_profile((MAIN, MAIN, (*LOOP[:2], *TENSOR[3:-2]), 5))
    in_process = dataclasses.replace(in_process, pipelines=(
        dataclasses.replace(in_process.pipelines[0], workers=()),))
    assert hotspots(in_process).stages == ()  # nor the training loop's
    cached = (*FETCH[:-1], PyFrame("CachedDataset.__getitem__", f"{PLUMBER}/torch/cache.py", 90))
    (fetch,) = hotspots(sampled_profile((WORKER, WORKER, cached, 5))).stages
    assert fetch.stage == "fetch"  # plumber's sample cache does the fetch's work: it is the fetch


def test_the_main_thread_is_the_training_loop_waiting_in_next_idle_and_imports_left_out():
    profile = sampled_profile((MAIN, MAIN, LOOP, 4), (MAIN, MAIN, WAIT, 6),
                              (MAIN, MAIN, IMPORT, 9), (MAIN, MAIN + 7, LOOP, 1))
    found = hotspots(profile)
    (loop,) = found.stages
    assert (loop.pipeline, loop.stage, loop.samples, loop.idle_samples) == ("", CONSUMER, 10, 6)
    assert loop.hottest.function == "train_step" and loop.share(loop.hottest.self_samples) == 0.4
    assert loop.folded[0].labels[0] == "<module> (train.py:43)"  # plumber's runner dropped
    assert found.unattributed_samples == 10


def test_a_loader_without_workers_runs_its_stages_in_the_main_thread():
    profile = sampled_profile((MAIN, MAIN, (*LOOP[:2], *TENSOR[3:]), 5))
    in_process = dataclasses.replace(profile, pipelines=(
        dataclasses.replace(profile.pipelines[0], workers=()),))
    (stage,) = hotspots(in_process).stages
    assert (stage.pipeline, stage.stage) == ("loader-0", "transform_1")


def test_waiting_calls_are_idle_and_library_names_come_from_their_folder():
    libraries = analysis.Libraries(ROOTS)
    assert libraries.library_of(f"{SITE}/PIL/Image.py") == "PIL"
    assert libraries.library_of(f"{PY}/json/decoder.py") == "json"
    assert libraries.library_of(f"{PLUMBER}/torch/hooks.py") == "plumber"
    assert libraries.library_of("<frozen importlib._bootstrap>") == "importlib"
    assert libraries.library_of(USER) is None
    scripts = analysis.Libraries((*ROOTS, "/usr/bin"))
    assert scripts.library_of("/usr/bin/plumber") == "plumber"  # the console script
    assert analysis.is_waiting(PyFrame("Condition.wait", f"{PY}/threading.py", 1), libraries)
    assert analysis.is_waiting(PyFrame("SSLSocket.read", f"{PY}/ssl.py", 1), libraries)
    assert not analysis.is_waiting(PyFrame("wait", USER, 1), libraries)


def test_the_wrapper_names_are_plumbers_own():
    from plumber.torch import workerside

    assert workerside._timed_fetch.__code__.co_qualname == analysis.FETCH_WRAPPER
    assert workerside._timed_collate.__code__.co_qualname == analysis.COLLATE_WRAPPER
    assert workerside.TimedTransform.__call__.__code__.co_qualname == analysis.TRANSFORM_WRAPPER
    assert workerside.__file__.endswith(analysis._WRAPPER_FILE)
    from plumber.torch import randomness

    assert randomness.decide_randomness.__code__.co_qualname == analysis.RANDOMNESS_CHECK
    assert randomness.__file__.endswith(analysis._RANDOMNESS_FILE)


def test_plumbers_randomness_check_in_the_main_thread_is_not_the_training_loop():
    check = (*LOOP[:2], PyFrame("decide_randomness", f"{PLUMBER}/torch/randomness.py", 60),
             PyFrame("check_repeatable", f"{PLUMBER}/torch/repeatability.py", 80),
             PyFrame("to_tensor_slowly", USER, 30))
    found = hotspots(sampled_profile((MAIN, MAIN, check, 6), (MAIN, MAIN, LOOP, 4)))
    (loop,) = found.stages
    assert (loop.stage, loop.samples, found.unattributed_samples) == (CONSUMER, 4, 6)


def test_samples_round_trip_through_the_saved_profile_and_bad_indexes_are_refused(tmp_path):
    profile = sampled_profile((MAIN, MAIN, LOOP, 4), (WORKER, WORKER, TENSOR, 7))
    profile = dataclasses.replace(
        profile, hotspots=dataclasses.replace(profile.hotspots, sampler_cpu_s=0.25))
    loaded = Profile.load(profile.save(tmp_path / "p.json"))
    assert loaded.hotspots == profile.hotspots
    assert hotspots(loaded).sampler_cpu_s == 0.25
    data = json.loads((tmp_path / "p.json").read_text())
    data["hotspots"]["stacks"][0]["frames"].append(len(data["hotspots"]["frames"]))
    with pytest.raises(ProfileFormatError, match=r"hotspots.stacks\[0\].frames"):
        Profile.from_dict(data)
    data["hotspots"]["stacks"][0]["frames"] = [-1]
    with pytest.raises(ProfileFormatError, match="at least 0"):
        Profile.from_dict(data)


def test_py_spy_samples_this_process():
    from plumber.measure.hotspots import find_py_spy

    if find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    sampler = StackSampler(rate_hz=100)
    sampler.start()
    assert sampler.pid is not None and sampler.pid != os.getpid()
    _spin_until_sampled()
    samples = sampler.stop()
    assert sampler.problem is None, sampler.problem
    assert sampler.pid is None
    functions = {samples.frames[i].function for s in samples.stacks for i in s.frames}
    assert "_spin_until_sampled" in functions
    assert samples.pid == os.getpid()
    assert 0 < samples.sampler_cpu_s < 5  # a second at 100 Hz of one process's stacks


def _spin_until_sampled() -> None:
    end = time.process_time() + 1.0
    while time.process_time() < end:
        sum(i * i for i in range(1000))


def test_a_tf_thread_inside_a_py_function_body_is_that_stage():
    body = StageCode("pipeline-0", "map-1", "decode_slowly", USER, 70, 75)
    tf_thread = _frames(("EagerFunc.__call__", f"{SITE}/tensorflow/python/ops/script_ops.py", 1),
                        ("decode_slowly", USER, 72),
                        ("loads", f"{PY}/json/__init__.py", 346))
    elsewhere = _frames(("Thread.run", f"{PY}/threading.py", 982), ("decode_slowly", USER, 90))
    base = sampled_profile()
    raw = [RawStack((MAIN,), MAIN + 3, tf_thread, 8), RawStack((MAIN,), MAIN + 4, elsewhere, 2)]
    samples = dataclasses.replace(python_samples(raw, MAIN, 100, "py-spy", ROOTS),
                                  stage_code=(body,))
    found = hotspots(dataclasses.replace(base, hotspots=samples))
    (stage,) = found.stages
    assert (stage.pipeline, stage.stage, stage.samples) == ("pipeline-0", "map-1", 8)
    assert stage.hottest.library == "json loads" and stage.hottest.line == 72
    assert found.unattributed_samples == 2  # outside the body's lines


def test_autographs_generated_code_is_named_by_the_users_lines_it_was_made_from(tmp_path):
    generated = "/tmp/__autograph_generated_file1x2y.py"
    made_from = tuple(SourceLine(line, USER, 30 + line - 11, "nested_body")
                      for line in range(11, 16))
    body = StageCode("pipeline-0", "map-2", "outer_factory.<locals>.nested_body", generated,
                     11, 15, generated_from=made_from)
    tf_thread = _frames(("EagerFunc.__call__", f"{SITE}/tensorflow/python/ops/script_ops.py", 1),
                        ("outer_factory.<locals>.nested_body", generated, 12),
                        ("converted_call", f"{SITE}/tensorflow/python/autograph/impl/api.py", 9),
                        ("loads", f"{PY}/json/__init__.py", 346))
    raw = [RawStack((MAIN,), MAIN + 3, tf_thread, 8)]
    samples = dataclasses.replace(python_samples(raw, MAIN, 100, "py-spy", ROOTS),
                                  stage_code=(body,))
    profile = dataclasses.replace(sampled_profile(), hotspots=samples)
    (stage,) = hotspots(profile).stages
    assert (stage.stage, stage.hottest.function, stage.hottest.file, stage.hottest.line) == (
        "map-2", "nested_body", USER, 31)
    assert stage.hottest.library == "tensorflow converted_call → json loads"
    assert Profile.load(profile.save(tmp_path / "p.json")).hotspots.stage_code == (body,)


def test_a_functions_line_is_where_it_computed_not_where_it_waited():
    def at(line, *inner):
        return (*FETCH[:-1], PyFrame("read_label", USER, line), *inner)

    waits = at(25, PyFrame("Condition.wait", f"{PY}/threading.py", 320))
    profile = sampled_profile((WORKER, WORKER, waits, 40), (WORKER, WORKER, at(27), 28),
                              (WORKER, WORKER, at(28, PyFrame("loads", f"{PY}/json/__init__.py",
                                                               346)), 27))
    (fetch,) = hotspots(profile).stages
    hottest = fetch.hottest
    assert (hottest.line, hottest.library, hottest.idle_samples) == (27, "", 40)
    only_waits = hotspots(sampled_profile((WORKER, WORKER, waits, 5))).stages[0].functions[0]
    assert (only_waits.line, only_waits.library) == (25, "threading Condition.wait")


def test_stacks_with_no_frame_and_a_spawned_workers_start_are_not_a_stage():
    spawned_start = _frames(("spawn_main", f"{PY}/multiprocessing/spawn.py", 122),
                            ("_fixup_main_from_path", f"{PY}/multiprocessing/spawn.py", 287),
                            ("run_path", f"{PY}/runpy.py", 291),
                            ("<module>", USER, 12), ("setup", USER, 5))
    found = hotspots(sampled_profile((WORKER, WORKER, (), 7), (MAIN, MAIN, (), 3),
                                     (WORKER, WORKER, spawned_start, 30),
                                     (WORKER, WORKER, IDLE, 2)))
    (pool,) = found.stages
    assert (pool.stage, pool.samples, found.unattributed_samples) == ("workers", 2, 40)


def _slow_py_spy(folder: Path, delay_s: float, said: Path) -> Path:
    """A fake py-spy that attaches for ``delay_s``, says it samples (touching ``said``), and
    writes an empty stacks file at SIGINT."""
    fake = folder / "py-spy"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --version ] && echo "py-spy 0.4.0" && exit 0\n'
        'out=""; prev=""; for a in "$@"; do [ "$prev" = --output ] && out="$a"; prev="$a"; done\n'
        "trap ': > \"$out\"; exit 0' INT\n"
        f"sleep {delay_s}\n"
        f"touch {said}\n"
        'echo "py-spy> Sampling process 10 times a second. Press Control-C to exit."\n'
        "while :; do sleep 0.05; done\n"
    )
    fake.chmod(0o755)
    return fake


def test_the_script_starts_once_py_spy_says_it_samples(tmp_path):
    said = tmp_path / "said"
    sampler = StackSampler(executable=str(_slow_py_spy(tmp_path, 0.5, said)))
    sampler.start()
    assert said.exists() and not sampler.started_late
    assert sampler.stop() is not None and sampler.problem is None


def test_a_py_spy_slower_to_start_than_the_timeout_is_noted_and_the_run_goes_on(
        tmp_path, monkeypatch):
    from plumber.capture.session import _stop_stacks

    monkeypatch.setattr(sampling, "START_TIMEOUT_S", 0.2)
    said = tmp_path / "said"
    sampler = StackSampler(executable=str(_slow_py_spy(tmp_path, 3, said)))
    begun = time.monotonic()
    sampler.start()
    assert time.monotonic() - begun < 2.5 and not said.exists() and sampler.started_late
    while not said.exists():
        time.sleep(0.05)
    notes: list[str] = []
    assert _stop_stacks(sampler, notes) is not None
    assert notes and "had not started sampling" in notes[0]
