"""Hostile numbers and shapes in a profile: refused in one line, never a traceback.

A profile is a file a user may edit or receive. ``cores_usable`` 0 or NaN
divided by zero, Infinity overflowed ``int()``, samples of 1e308 overflowed
``math.fsum`` and a 400-digit integer overflowed ``float()``; each must be
a one-line ``ProfileFormatError`` naming the field (``plumber report`` exits
2), and a value that is merely unknown (``null`` cores) must be analysed
with a warning.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from synthetic_profiles import loader_profile, make_profile, stage

from plumber.analyzers.diagnose import diagnose_all
from plumber.cli import main
from plumber.records import exitcodes
from plumber.records.profile import Profile, ProfileFormatError, ProfileVersionError, TimeSeries
from plumber.reports.html import render_html
from plumber.reports.terminal import render_summary
from plumber.tuner.derive import derive_plan

SAMPLES = TimeSeries(
    t=(0.0, 1.0, 2.0), cpu_percent=(50.0, 60.0, 70.0), process_cpu_percent=(40.0, 50.0, 60.0),
    per_core_percent=((10.0, 20.0),) * 3, disk_read_bps=(1e6, 2e6, 3e6),
    net_recv_bps=(1.0,) * 3, net_sent_bps=(1.0,) * 3, memory_used_bytes=(1e9,) * 3,
    process_rss_bytes=(1e8,) * 3,
)


def tf_profile() -> Profile:
    return make_profile(
        stage("source-0", "source", 1000, 1.0, bytes_per_element=100),
        stage("map-0", "map", 1000, 4.0, parallelism=1),
        stage("batch-0", "batch", 100, 0.1),
        wait_s=5.0, step_s=1.0, disk_bps=1e8, resources=SAMPLES,
    )


def torch_profile() -> Profile:
    return loader_profile((0.01, 0.01), (("ToTensor", 0.001, 0.001, False),), num_workers=2,
                          wait_s=3.0, step_s=1.0, worker_rss=1000)


def write(tmp_path: Path, data: dict[str, Any], raw: dict[str, str] | None = None) -> Path:
    """``data`` as a profile file; ``raw`` replaces quoted markers with bare JSON words."""
    text = json.dumps(data)
    for marker, word in (raw or {}).items():
        text = text.replace(json.dumps(marker), word)
    path = tmp_path / "profile.json"
    path.write_text(text)
    return path


def mutated(change: Any) -> dict[str, Any]:
    data = tf_profile().to_dict()
    change(data)
    return data


def first_stats(data: dict[str, Any]) -> dict[str, Any]:
    return data["pipelines"][0]["stages"][0]["stats"]


@pytest.mark.parametrize(("change", "raw", "named"), [
    (lambda d: d["machine"].update(cores_usable=0), None, "machine.cores_usable must be above 0"),
    (lambda d: d["machine"].update(cores_usable=-2.0), None, "machine.cores_usable"),
    (lambda d: d["machine"].update(link_bps=0), None, "machine.link_bps must be above 0"),
    (lambda d: d["machine"].update(cores_usable="NAN"), {"NAN": "NaN"},
     "machine.cores_usable must be a finite number"),
    (lambda d: d["machine"].update(cores_usable="INF"), {"INF": "Infinity"},
     "machine.cores_usable must be a finite number"),
    (lambda d: d["machine"].update(cores_logical=0), None, "machine.cores_logical"),
    (lambda d: d["resources"].update(cpu_percent=[1e308] * 3), None,
     "resources.cpu_percent[0] must be at most"),
    (lambda d: d["resources"]["per_core_percent"][1].__setitem__(0, "-INF"), {"-INF": "-Infinity"},
     "resources.per_core_percent[1][0] must be a finite number"),
    (lambda d: first_stats(d).update(wall_time_s=-1.0), None,
     "pipelines[0].stages[0].stats.wall_time_s must be at least 0"),
    (lambda d: first_stats(d).update(elements=10**400), None,
     "pipelines[0].stages[0].stats.elements must be at most"),
    (lambda d: d["run"].update(duration_s=10**400), None, "run.duration_s must be at most"),
    (lambda d: first_stats(d).update(elements=True), None,
     "pipelines[0].stages[0].stats.elements must be an integer"),
    (lambda d: first_stats(d).update(wall_time_s="1.0"), None,
     "pipelines[0].stages[0].stats.wall_time_s must be a number"),
    (lambda d: d["pipelines"][0]["consumer"].update(steps=-3), None,
     "pipelines[0].consumer.steps must be at least 0"),
    (lambda d: d.update(machine=[1, 2]), None, "machine must be an object"),
    (lambda d: d["pipelines"][0]["stages"][1].update(knobs=[]), None,
     "pipelines[0].stages[1].knobs must be an object"),
    (lambda d: d["pipelines"][0]["stages"][1]["knobs"].update(parallelism="NAN"),
     {"NAN": "NaN"}, "pipelines[0].stages[1].knobs['parallelism'] must be a finite number"),
    (lambda d: d["pipelines"][0]["stages"][1]["knobs"].update(parallelism=10**30), None,
     "knobs['parallelism'] must be at most"),
    (lambda d: d["machine"].pop("cores_usable"), None, "machine.cores_usable is missing"),
    (lambda d: d.update(schema_version=True), None, "profile has no integer schema_version"),
    (lambda d: d["pipelines"][0].update(root="nowhere"), None,
     "pipelines[0].root 'nowhere' names none of its stages"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_hostile_value_is_refused_naming_its_field(tmp_path, change, raw, named):
    path = write(tmp_path, mutated(change), raw)
    with pytest.raises(ProfileFormatError) as caught:
        Profile.load(path)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_json_nested_too_deeply_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"schema_version": 1, "run": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ProfileFormatError, match="nested too deeply"):
        Profile.load(path)


def test_knobs_nested_too_deeply_for_the_checks_are_refused_in_one_line():
    data = tf_profile().to_dict()
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    data["pipelines"][0]["stages"][1]["knobs"]["note"] = deep
    with pytest.raises(ProfileFormatError, match="nested too deeply"):
        Profile.from_dict(data)


@pytest.mark.parametrize("profile", [tf_profile(), torch_profile()], ids=["tf", "torch"])
def test_a_profile_plumber_writes_loads_back_unchanged(tmp_path, profile):
    assert Profile.load(profile.save(tmp_path / "p.json")) == profile


def test_unknown_keys_are_ignored_as_a_later_writer_of_the_same_version_adds_them(tmp_path):
    data = tf_profile().to_dict()
    data["future_field"] = {"x": 1}
    data["machine"]["future_machine_field"] = [1, 2]
    assert Profile.load(write(tmp_path, data)) == tf_profile()


def test_unknown_usable_cores_are_analysed_with_a_warning(tmp_path):
    """GIVEN cores_usable null (not measured) WHEN diagnosed THEN the logical cores stand in."""
    profile = Profile.load(write(tmp_path, mutated(
        lambda d: d["machine"].update(cores_usable=None))))
    (diagnosis,) = diagnose_all(profile)
    assert any("usable cores were not recorded" in w for w in diagnosis.warnings)
    assert diagnosis.bottleneck_stage == "map-0"


@pytest.mark.parametrize("cores", [0.0, -1.0, math.nan, math.inf])
def test_a_profile_built_in_code_with_unusable_cores_is_analysed_with_a_warning(cores):
    """Profiles built in code (the notebook API) skip loading's checks: Infinity overflowed."""
    profile = tf_profile()
    profile = dataclasses.replace(
        profile, machine=dataclasses.replace(profile.machine, cores_usable=cores))
    (diagnosis,) = diagnoses = tuple(diagnose_all(profile))
    assert any("usable cores were not recorded" in w for w in diagnosis.warnings)
    render_html(profile, diagnoses)
    derive_plan(profile, diagnoses, Path("train.py"))


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "0", "1e999"])
def test_plumber_report_of_hostile_cores_exits_2_with_one_line(tmp_path, capsys, raw):
    path = write(tmp_path, mutated(lambda d: d["machine"].update(cores_usable="X")), {"X": raw})
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "machine.cores_usable" in err
    assert not (tmp_path / "r.html").exists()


HOSTILE_VALUES = {
    "zero": 0, "negative": -5, "negative-fraction": -0.5, "huge-int": 10**400, "1e308": 1e308,
    "nan": float("nan"), "infinity": float("inf"), "true": True, "string": "abc", "list": [1],
    "object": {"a": 1}, "null": None,
}


def leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every scalar of ``data`` (the first two items of each list)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in leaves(v, (*path, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data[:2]) for p in leaves(v, (*path, i))]
    return [path]


def replaced(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    inner: Any = data
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return data


@pytest.mark.parametrize("profile", [tf_profile(), torch_profile()], ids=["tf", "torch"])
def test_every_field_set_to_every_hostile_value_is_refused_or_analysed(profile):
    """The campaign: each scalar, object and list of a profile set to each hostile value.

    Each result is either a ProfileFormatError or a profile that the analysis,
    both renderers and the tuner take without an exception.
    """
    data = profile.to_dict()
    crashes = []
    for path in [*leaves(data), *containers(data)]:
        for name, value in HOSTILE_VALUES.items():
            text = json.dumps(replaced(data, path, value))
            try:
                loaded = Profile.from_dict(json.loads(text))
            except (ProfileFormatError, ProfileVersionError):
                continue
            try:
                diagnoses = tuple(diagnose_all(loaded))
                render_html(loaded, diagnoses)
                render_summary(loaded, diagnoses, report_path=Path("r.html"),
                               profile_path=Path("p.json"))
                derive_plan(loaded, diagnoses, Path("train.py"))
            except Exception as exc:  # noqa: BLE001 - collected to name every crash at once
                crashes.append(f"{'.'.join(map(str, path))}={name}: {type(exc).__name__}: {exc}")
    assert crashes == []


def containers(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every object and list inside ``data`` (the first two items of each list)."""
    if isinstance(data, dict):
        return [*([path] if path else []),
                *(p for k, v in data.items() for p in containers(v, (*path, k)))]
    if isinstance(data, list):
        return [path, *(p for i, v in enumerate(data[:2]) for p in containers(v, (*path, i)))]
    return []


def test_every_baseline_field_set_to_every_hostile_value_is_refused_or_gated(tmp_path):
    """The campaign on a gate baseline: a BaselineError (exit 12) or a verdict, no traceback.

    A 400-digit integer for the calibration speed raised OverflowError.
    """
    from plumber.gate import api
    from plumber.gate.baseline import BaselineError, load_baseline
    from plumber.gate.compare import compare
    from plumber.gate.markdown import gate_summary

    profile = tf_profile().save(tmp_path / "p.json")
    measured = api.record(profile, tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    crashes = []
    for path in [*leaves(data), *containers(data)]:
        for name, value in HOSTILE_VALUES.items():
            damaged = tmp_path / "damaged.json"
            damaged.write_text(json.dumps(replaced(data, path, value)))
            try:
                gate_summary(compare(load_baseline(damaged), measured, 0.1))
            except BaselineError:
                continue
            except Exception as exc:  # noqa: BLE001 - collected to name every crash at once
                crashes.append(f"{'.'.join(map(str, path))}={name}: {type(exc).__name__}: {exc}")
    assert crashes == []
