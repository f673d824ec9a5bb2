"""A plan's offload section, and ``plumber run --data-service`` refusing what it cannot use.

No service and no framework: the refusals come before the script runs.
"""

from __future__ import annotations

import json
import socket

import pytest

from plumber.cli import main
from plumber.records import exitcodes
from plumber.records.offload import (
    OffloadPlan,
    read_offload,
    save_keeping_offload,
    write_offload,
)
from plumber.records.plan import Plan, PlanError, StageRef
from plumber.tf.servicewatch import host_port, reachable

SECTION = OffloadPlan(cut=StageRef("train.py", 12, "map"), stage_id="map-1",
                      processing_mode="distributed_epoch", max_outstanding_requests=8,
                      workers=3, predicted_rate=120.0, reason="why", rates=(50.0, 95.0, 120.0))


def test_the_section_goes_into_a_new_plan_that_still_loads_as_a_plan(tmp_path):
    path = write_offload(tmp_path / "plan.json", SECTION, "train.py")
    assert read_offload(path) == SECTION
    assert Plan.load(path).script == "train.py"


def test_the_section_joins_an_existing_plan_and_keeps_its_settings(tmp_path):
    path = tmp_path / "plan.json"
    Plan(script="train.py", notes=("tuned",)).save(path)
    write_offload(path, SECTION, "other.py")
    assert Plan.load(path).notes == ("tuned",)
    assert read_offload(path) == SECTION


def test_a_section_written_before_rates_were_recorded_reads_without_them(tmp_path):
    path = write_offload(tmp_path / "plan.json", SECTION, "train.py")
    data = json.loads(path.read_text())
    del data["offload"]["rates"]
    path.write_text(json.dumps(data))
    assert read_offload(path).rates == ()


def test_a_plan_without_the_section_has_none(tmp_path):
    path = Plan(script="train.py").save(tmp_path / "plan.json")
    assert read_offload(path) is None


def test_a_new_plan_over_one_for_the_same_script_keeps_its_offload_section(tmp_path):
    path = write_offload(tmp_path / "plan.json", SECTION, "/checkout/train.py")
    kept = save_keeping_offload(Plan(script="/elsewhere/train.py", notes=("tuned",)), path)
    assert kept == SECTION
    assert read_offload(path) == SECTION
    assert Plan.load(path).notes == ("tuned",)


@pytest.mark.parametrize("before", ["other script", "no section", "bad section", "not a plan",
                                    "no file"])
def test_a_new_plan_keeps_no_section_it_cannot_trust(tmp_path, before):
    path = tmp_path / "plan.json"
    if before == "other script":
        write_offload(path, SECTION, "eval.py")
    elif before == "no section":
        Plan(script="train.py").save(path)
    elif before == "bad section":
        write_offload(path, SECTION, "train.py")
        data = json.loads(path.read_text())
        data["offload"]["workers"] = 0
        path.write_text(json.dumps(data))
    elif before == "not a plan":
        path.write_text("{not json")
    assert save_keeping_offload(Plan(script="train.py", notes=("tuned",)), path) is None
    assert read_offload(path) is None
    assert Plan.load(path).notes == ("tuned",)


@pytest.mark.parametrize("change, message", [
    ({"processing_mode": "round_robin"}, "processing_mode must be one of"),
    ({"max_outstanding_requests": 0}, "max_outstanding_requests"),
    ({"workers": "two"}, "workers"),
    ({"surprise": 1}, r"unknown key\(s\) surprise"),
    ({"rates": "fast"}, "rates must be a list of numbers"),
])
def test_a_bad_value_is_refused_naming_the_file_and_the_field(tmp_path, change, message):
    path = write_offload(tmp_path / "plan.json", SECTION, "train.py")
    data = json.loads(path.read_text())
    data["offload"].update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=message) as error:
        read_offload(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("address, expected", [
    ("grpc://localhost:5050", ("localhost", 5050)),
    ("10.0.0.7:80", ("10.0.0.7", 80)),
])
def test_service_addresses(address, expected):
    assert host_port(address) == expected


@pytest.mark.parametrize("address", ["http://host:1", "grpc://host", "localhost"])
def test_a_malformed_service_address_is_refused(address):
    with pytest.raises(ValueError, match="not a tf.data service address"):
        host_port(address)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text("raise SystemExit('the script must not run')\n")
    return path


def test_run_refuses_a_plan_without_an_offload_section(tmp_path, script, capsys):
    plan = Plan(script="train.py").save(tmp_path / "plan.json")
    status = main(["run", "--plan", str(plan), "--data-service", "grpc://localhost:1",
                   str(script)])
    assert status == exitcodes.USAGE
    assert "has no offload section; write one with: plumber service plan" in \
        capsys.readouterr().err


def test_run_refuses_a_malformed_address(tmp_path, script, capsys):
    plan = write_offload(tmp_path / "plan.json", SECTION, "train.py")
    status = main(["run", "--plan", str(plan), "--data-service", "localhost", str(script)])
    assert status == exitcodes.USAGE
    assert "not a tf.data service address" in capsys.readouterr().err


def test_run_without_a_dispatcher_is_a_lost_service_before_the_script_starts(
        tmp_path, script, capsys):
    plan = write_offload(tmp_path / "plan.json", SECTION, "train.py")
    address = f"grpc://127.0.0.1:{unused_port()}"
    assert not reachable(address)
    status = main(["run", "--plan", str(plan), "--data-service", address, str(script)])
    assert status == exitcodes.SERVICE_LOST
    assert f"no tf.data service dispatcher answers at {address}" in capsys.readouterr().err


def test_service_plan_writes_the_cut_the_analysis_chose(tmp_path, capsys):
    from tests.unit.test_analyzers_offload import cpu_bound

    profile_path = tmp_path / "profile.json"
    cpu_bound().save(profile_path)
    plan = tmp_path / "plan.json"
    status = main(["service", "plan", str(profile_path), str(tmp_path / "train.py"),
                   "--plan", str(plan)])
    assert status == exitcodes.OK, capsys.readouterr().err
    section = read_offload(plan)
    assert section is not None
    assert (section.cut, section.stage_id) == (StageRef("train.py", 12, "batch"), "batch")
    assert (section.processing_mode, section.workers) == ("distributed_epoch", 5)
    assert len(section.rates) == 5 and section.rates[-1] == section.predicted_rate
    assert list(section.rates) == sorted(section.rates)
    assert "offload of pipeline-0 written to" in capsys.readouterr().err


def test_service_plan_refuses_a_profile_with_nothing_to_offload(tmp_path, capsys):
    from tests.unit.test_analyzers_offload import IDLE, cpu_bound

    profile_path = tmp_path / "profile.json"
    cpu_bound(resources=IDLE).save(profile_path)
    status = main(["service", "plan", str(profile_path), str(tmp_path / "train.py"),
                   "--plan", str(tmp_path / "plan.json")])
    assert status == exitcodes.USAGE
    assert "nothing to offload" in capsys.readouterr().err
    assert not (tmp_path / "plan.json").exists()


def test_service_start_refuses_a_port_in_use(capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        status = main(["service", "start", "--workers", "1", "--port", str(port)])
    assert status == exitcodes.USAGE
    assert f"port {port} is in use" in capsys.readouterr().err
