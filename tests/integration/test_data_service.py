"""``plumber service start`` and ``plumber run --data-service`` on loopback.

The service runs in other processes, as on real hosts (a worker in the
client's own process would find the client's Python functions and hide
what fails on a real one). GIVEN a plan whose offload cut is the script's
map, WHEN the script runs with it, THEN each epoch yields what the script
yields as written (``distributed_epoch``) or that once per worker
(``parallel_epochs``); a dispatcher or a worker that goes away mid-run is a
named error with exit status 69 instead of a run that waits for good; under
``plumber profile``, with the profile of what ran written.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PIPELINES, run_plumber

from plumber.records.exitcodes import SERVICE_LOST
from plumber.records.profile import Profile

pytestmark = pytest.mark.slow

SCRIPT = PIPELINES / "tf_data_service.py"
KERAS_SCRIPT = PIPELINES / "keras_data_service.py"
READER_SCRIPT = PIPELINES / "tf_service_reader.py"
SERVICE_BOUND_SCRIPT = PIPELINES / "tf_service_bound.py"
SERVICE_THEN_MAP_SCRIPT = PIPELINES / "tf_service_then_map.py"


def cut_line(script: Path) -> int:
    return next(i for i, line in enumerate(script.read_text().splitlines(), 1)
                if line.endswith("# the cut"))


CUT_LINE = cut_line(SCRIPT)


class Service:
    """``plumber service start`` in a process of its own; ``address`` is what it printed."""

    def __init__(self, cwd: Path, *args: str) -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plumber", "service", "start", *args], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.address = self.process.stdout.readline().strip()
        assert self.address.startswith("grpc://"), self.process.stderr.read()

    def stop(self, how: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(how)
        return self.process.wait(timeout=30)


def write_plan(folder: Path, mode: str, script: Path = SCRIPT,
               rates: tuple[float, ...] = ()) -> Path:
    plan = folder / "plan.json"
    plan.write_text(json.dumps({
        "kind": "plumber-plan", "schema_version": 2, "script": script.name, "pipelines": [],
        "offload": {"cut": {"file": script.name, "line": cut_line(script), "kind": "map"},
                    "stage_id": "map-1", "processing_mode": mode,
                    "max_outstanding_requests": 4, "workers": len(rates) or 2,
                    "predicted_rate": rates[-1] if rates else None, "rates": list(rates)},
    }))
    return plan


def epochs(stdout: str) -> list[collections.Counter]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [collections.Counter(line["elements"]) for line in lines]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("service"), "--workers", "2")
    yield service
    assert service.stop() == 0


@pytest.fixture(scope="module")
def as_written(tmp_path_factory) -> list[collections.Counter]:
    """The epochs the script yields run plainly (one run shared by the tests that compare)."""
    plain = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path_factory.mktemp("plain"),
                           capture_output=True, text=True, timeout=90,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert plain.returncode == 0, plain.stderr
    return epochs(plain.stdout)


def test_distributed_epoch_yields_each_element_once_per_epoch(tmp_path, two_workers,
                                                             as_written):
    plan = write_plan(tmp_path, "distributed_epoch")
    run = run_plumber(["run", "--plan", str(plan), "--data-service", two_workers.address,
                       str(SCRIPT)], cwd=tmp_path, timeout=90)
    assert run.returncode == 0, run.stderr
    assert f"offload applied: distribute(distributed_epoch, max_outstanding_requests=4) to " \
           f"{two_workers.address} after map at {SCRIPT.name}:{CUT_LINE}" in run.stderr
    assert len(as_written) == 2 and epochs(run.stdout) == as_written


def test_parallel_epochs_yields_each_element_once_per_worker(tmp_path, two_workers,
                                                            as_written):
    plan = write_plan(tmp_path, "parallel_epochs")
    run = run_plumber(["run", "--plan", str(plan), "--data-service", two_workers.address,
                       str(SCRIPT)], cwd=tmp_path, timeout=90)
    assert run.returncode == 0, run.stderr
    doubled = [collections.Counter({k: 2 * v for k, v in epoch.items()})
               for epoch in as_written]
    assert epochs(run.stdout) == doubled


def test_keras_fit_trains_on_the_elements_as_written(tmp_path, two_workers):
    plan = write_plan(tmp_path, "distributed_epoch", KERAS_SCRIPT)
    run = run_plumber(["run", "--plan", str(plan), "--data-service", two_workers.address,
                       str(KERAS_SCRIPT)], cwd=tmp_path, timeout=90)
    assert run.returncode == 0, run.stderr
    assert f"after map at {KERAS_SCRIPT.name}:{cut_line(KERAS_SCRIPT)}" in run.stderr
    epochs_seen = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    ids = range(256)
    each = {"batches": 8, "elements": 256, "total": sum(ids), "squares": sum(i * i for i in ids)}
    assert epochs_seen == [{"epoch": 0, **each}, {"epoch": 1, **each}]


def test_a_profile_with_the_offload_applied_records_it_and_reads_from_the_service(
        tmp_path, two_workers, as_written):
    plan = write_plan(tmp_path, "distributed_epoch", rates=(300.0, 500.0, 600.0))
    run = run_plumber(["profile", "--plan", str(plan), "--data-service", two_workers.address,
                       "--service-workers", "2", "-o", "out", str(SCRIPT)], cwd=tmp_path,
                      timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert epochs(run.stdout) == as_written
    profile = Profile.load(run.profile_path)
    applied = profile.applied_plan
    assert applied is not None and applied.data_service == two_workers.address
    assert applied.service_workers == 2
    assert any(line.startswith("offload applied: distribute(distributed_epoch") and
               f"after map at {SCRIPT.name}:{CUT_LINE}" in line for line in applied.changes)
    [pipeline] = profile.pipelines
    read = next(s for s in pipeline.stages if s.op.startswith("DataService"))
    assert read.knobs["service"] == two_workers.address
    summary = " ".join(run.stderr.split())
    assert (f"the plan's offload (after map at {SCRIPT.name}:{CUT_LINE}) was predicted 500/s "
            f"with the service's 2 worker(s) (as --service-workers said)") in summary
    assert "pipeline-0 measured" in summary and "prediction error" in summary


def plumber_in_background(tmp_path: Path, *args: str) -> subprocess.Popen:
    """``plumber ARGS`` started in ``tmp_path``, its output read as it comes."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "plumber", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def slow_run(tmp_path: Path, address: str, script: Path = SCRIPT) -> subprocess.Popen:
    plan = write_plan(tmp_path, "distributed_epoch", script)
    return plumber_in_background(tmp_path, "run", "--plan", str(plan), "--data-service", address,
                                 "--service-timeout", "5", str(script), "--", "--slow")


def wait_for_reads(run: subprocess.Popen) -> None:
    """Block until the script has read from the service."""
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("read 40"):
            return
    pytest.fail(f"the script read nothing: {run.stderr.read() if run.stderr else ''}")


def killed_mid_run(run: subprocess.Popen, service: Service, *others: Service) -> str:
    """Kill ``service`` once the run has read from it; the run's stderr once it has ended.

    Whatever happens, the run is killed and every service stopped afterwards.
    """
    try:
        wait_for_reads(run)
        service.stop(signal.SIGKILL)
        return run.communicate(timeout=90)[1]
    finally:
        run.kill()
        service.stop(signal.SIGKILL)
        for other in others:
            other.stop()


def test_a_dispatcher_that_goes_away_ends_the_run_with_a_named_error(tmp_path):
    service = Service(tmp_path, "--workers", "1")
    run = slow_run(tmp_path, service.address)
    stderr = killed_mid_run(run, service)
    assert run.returncode == SERVICE_LOST
    assert f"the tf.data service dispatcher at {service.address} stopped answering" in stderr


@pytest.mark.parametrize("script, compiled", [(SCRIPT, False), (KERAS_SCRIPT, True)],
                         ids=["custom loop", "keras fit"])
def test_a_worker_that_dies_ends_the_run_with_a_named_error(tmp_path, script, compiled):
    dispatcher = Service(tmp_path, "--workers", "0")
    worker = Service(tmp_path, "--workers", "1", "--host", "localhost",
                     "--dispatcher", dispatcher.address.removeprefix("grpc://"))
    run = slow_run(tmp_path, dispatcher.address, script)
    stderr = killed_mid_run(run, worker, dispatcher)
    assert run.returncode == SERVICE_LOST, stderr[-3000:]
    assert f"no element came from the tf.data service at {dispatcher.address}" in stderr
    assert "its workers died or stopped answering" in stderr
    assert ("read inside a compiled function (Keras fit" in stderr) == compiled


def test_a_profiled_script_whose_service_goes_away_ends_with_its_profile_written(tmp_path):
    service = Service(tmp_path, "--workers", "1")
    run = plumber_in_background(tmp_path, "profile", "-o", "out", "--service-timeout", "5",
                                str(READER_SCRIPT), "--", service.address)
    stderr = killed_mid_run(run, service)
    assert run.returncode == SERVICE_LOST, stderr
    assert "no element came from the tf.data service the script reads from" in stderr
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.exit_status == SERVICE_LOST
    assert "no element came from the tf.data service" in (profile.run.error or "")
    assert any("the run was lost" in note for note in profile.run.notes)
    assert profile.pipelines and profile.pipelines[0].consumer.steps >= 40
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_profile_with_the_offload_applied_whose_worker_dies_is_written_with_the_plan(
        tmp_path):
    dispatcher = Service(tmp_path, "--workers", "0")
    worker = Service(tmp_path, "--workers", "1", "--host", "localhost",
                     "--dispatcher", dispatcher.address.removeprefix("grpc://"))
    plan = write_plan(tmp_path, "distributed_epoch", rates=(300.0,))
    run = plumber_in_background(tmp_path, "profile", "-o", "out", "--plan", str(plan),
                                "--data-service", dispatcher.address, "--service-workers", "1",
                                "--service-timeout", "5", str(SCRIPT), "--", "--slow")
    stderr = killed_mid_run(run, worker, dispatcher)
    assert run.returncode == SERVICE_LOST, stderr[-3000:]
    assert "no element came from the tf.data service the script reads from" in stderr
    profile = Profile.load(tmp_path / "out" / "profile.json")
    assert profile.run.exit_status == SERVICE_LOST
    assert profile.applied_plan is not None and profile.applied_plan.service_workers == 1
    assert any(line.startswith("offload applied:") for line in profile.applied_plan.changes)
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_profile_names_a_slow_service_and_marks_the_stages_that_ran_on_it(tmp_path):
    service = Service(tmp_path, "--workers", "1")
    try:
        run = run_plumber(["profile", "-o", "out", str(SERVICE_BOUND_SCRIPT), "--",
                           service.address], cwd=tmp_path)
    finally:
        service.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Bound by    the tf.data service's workers" in run.stderr, run.stderr[-3000:]
    (pipeline,) = Profile.load(tmp_path / "out" / "profile.json").pipelines
    read = next(s for s in pipeline.stages if s.op.startswith("DataService"))
    assert (read.kind, read.source.line) == ("source", 25)
    assert read.knobs["service"] == service.address
    assert read.knobs["processing_mode"] == "distributed_epoch"
    assert read.stats is not None and read.stats.elements == 2 * 60
    sent = {s.id: s for s in pipeline.stages if s.stats is None}
    assert {(s.op, s.source.line) for s in sent.values()} == {
        ("Range", 22), ("ParallelMapV2", 23), ("BatchV2", 24)}
    assert all("ran on the tf.data service's workers" in s.unmeasured_reason
               for s in sent.values())
    assert read.inputs == (next(i for i, s in sent.items() if s.kind == "batch"),)
    assert any("not re-run for their CPU time" in note for note in pipeline.notes)


def test_tune_ends_with_a_named_error_when_the_service_goes_away_while_it_measures(tmp_path):
    service = Service(tmp_path, "--workers", "1")
    run = plumber_in_background(tmp_path, "tune", "-o", "out/plan.json", "--duration", "3",
                                "--rounds", "1", "--service-timeout", "5",
                                str(SERVICE_THEN_MAP_SCRIPT), "--", service.address)
    try:
        assert run.stdout is not None
        profiled = tmp_path / "out" / "profile.json"
        for line in run.stdout:
            if line.startswith("read 40") and profiled.exists():
                break  # a measuring run reads, the profiling run's files are written
        else:
            pytest.fail(f"tune measured no run: {run.stderr.read() if run.stderr else ''}")
        service.stop(signal.SIGKILL)
        stderr = run.communicate(timeout=90)[1]
    finally:
        run.kill()
        service.stop(signal.SIGKILL)
    assert run.returncode == SERVICE_LOST, stderr[-3000:]
    assert "it went away while tune measured the plan, so no plan was written" in stderr
    assert not (tmp_path / "out" / "plan.json").exists()
    assert Profile.load(profiled).pipelines
