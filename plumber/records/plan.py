"""The tuning plan: per-stage settings, as a versioned JSON file.

A plan belongs to one script. Each pipeline it tunes is named by its root
stage, and each stage by a :class:`StageRef`: the source file (relative to
the script's folder when inside it), line, kind and occurrence. Those are
what the user wrote, so they survive a re-run of the script.

Per stage a plan can set the parallelism, place a cache right after the
stage (in memory or in a file), place a prefetch right after it, and size
the pipeline's thread pool there (``threads``: tf.data runs parallel calls on
a pool as large as the core count unless told otherwise, which caps the
calls a waiting stage really has in flight). A torch DataLoader's settings
sit on its stages as described in ``docs/torch-pipelines.md``
(``parallelism`` is ``num_workers``, ``prefetch`` is ``prefetch_factor``,
plus ``persistent_workers`` and ``pin_memory``). ``object_cache`` on the
stage that fetches from object storage keeps the objects its S3 clients read
(``"memory"`` or a folder; :mod:`plumber.caching.objectcache`). Every
decision carries the model's predicted rate and the reason, for the report;
each pipeline the rates its verification measured, one per round, so the
report can show their spread beside the medians. A pipeline's predicted
rate is for the settings the model chose, which the plan records
(``predicted_for``): settings changed afterwards, by ``tune --search``
keeping the best of its trials or by hand, are not what the model
predicted, and nothing sets a run of them against that rate.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plumber.records import jsonfile, planchecks
from plumber.records.folders import data_cache_dir
from plumber.records.planchecks import PlanError
from plumber.records.profile import SourceLocation

#: 2 added ``object_cache``; plans of version 1 still load.
PLAN_SCHEMA_VERSION = 2
PLAN_KIND = "plumber-plan"


@dataclass(frozen=True)
class StageRef:
    """A stage as the user wrote it: file, line, kind, occurrence at that line."""

    file: str
    line: int
    kind: str
    occurrence: int = 0

    def __str__(self) -> str:
        suffix = f" #{self.occurrence + 1}" if self.occurrence else ""
        return f"{self.kind} at {self.file}:{self.line}{suffix}"

    @classmethod
    def of(cls, source: SourceLocation, kind: str, script_dir: Path) -> StageRef:
        return cls(portable_path(source.file, script_dir), source.line, kind, source.occurrence)


@dataclass(frozen=True)
class StageSetting:
    """What the plan changes at one stage, why, and what the model expects."""

    stage: StageRef
    stage_id: str
    parallelism: int | None = None
    cache: str | None = None
    prefetch: int | None = None
    threads: int | None = None
    persistent_workers: bool | None = None
    pin_memory: bool | None = None
    object_cache: str | None = None
    reason: str = ""
    predicted_rate: float | None = None

    def not_found(self) -> str:
        """What to say when the script builds no stage this setting names: it is left as written."""
        return f"plan stage not found, left as written: {self.stage} ({self.stage_id})"


def warn_not_found(settings: Iterable[StageSetting], stacklevel: int = 2) -> None:
    """A warning per setting that found no stage (``stacklevel`` as in the caller's ``warn``)."""
    for setting in settings:
        warnings.warn(setting.not_found(), stacklevel=stacklevel + 1)


@dataclass(frozen=True)
class PipelinePlan:
    """The settings for one pipeline of the script.

    ``measured_rate_before``/``_after`` are the medians of the verification
    runs, ``measured_rates_before``/``_after`` those runs' rates, one per
    interleaved round (empty in plans written before they were recorded).
    ``measured_steady_rate_after`` is the median of the tuned runs' rates over
    their steady windows (after each iterator's first step), the window
    ``predicted_rate`` is for; None where the runs recorded none.
    ``predicted_for`` is the :func:`settings_fingerprint` of the settings
    ``predicted_rate`` was made for; None in plans written before it was
    recorded, whose prediction is taken as for their settings.
    """

    root: StageRef
    settings: tuple[StageSetting, ...]
    observed_rate: float | None = None
    predicted_rate: float | None = None
    measured_rate_before: float | None = None
    measured_rate_after: float | None = None
    measured_rates_before: tuple[float, ...] = ()
    measured_rates_after: tuple[float, ...] = ()
    measured_steady_rate_after: float | None = None
    predicted_for: str | None = None

    @property
    def predicts_these_settings(self) -> bool:
        """Whether ``predicted_rate`` was made for the settings the plan now holds."""
        return self.predicted_for is None or \
            self.predicted_for == settings_fingerprint(self.settings)


def settings_fingerprint(settings: Iterable[StageSetting]) -> str:
    """A digest of what ``settings`` change, stage by stage: what a predicted rate is for.

    Reasons and rates are left out, and a cache counts as in memory or in a
    file, not by its path: a plan's relative paths are resolved on loading,
    and where the file lies does not change the rate.
    """
    def placed(location: str | None) -> str | None:
        return location if location in (None, "memory") else "file"

    knobs = sorted(json.dumps(
        [s.stage.file, s.stage.line, s.stage.kind, s.stage.occurrence, s.parallelism,
         placed(s.cache), s.prefetch, s.threads, s.persistent_workers, s.pin_memory,
         placed(s.object_cache)]) for s in settings)
    digest = hashlib.sha256("\n".join(knobs).encode()).hexdigest()
    return f"sha256:{digest[:16]}"


@dataclass(frozen=True)
class Plan:
    """Everything ``plumber run --plan`` needs to build the tuned pipelines.

    ``rejected`` keeps, for the record and the report, the pipelines whose
    plan verification did not measure faster; nothing applies them.
    """

    script: str
    pipelines: tuple[PipelinePlan, ...] = ()
    notes: tuple[str, ...] = ()
    rejected: tuple[PipelinePlan, ...] = ()
    schema_version: int = PLAN_SCHEMA_VERSION
    kind: str = field(default=PLAN_KIND)

    def settings_by_ref(self) -> dict[StageRef, StageSetting]:
        return {s.stage: s for p in self.pipelines for s in p.settings}

    def to_json(self) -> str:
        """The plan as JSON; an unbounded (infinite) rate is written as null."""
        return jsonfile.dumps(asdict(self))

    def save(self, path: str | Path) -> Path:
        """Write the plan atomically and return its path."""
        return jsonfile.save_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read and check a plan file; a :class:`PlanError` names the file and the reason."""
        data = jsonfile.read_json(path, PlanError, str(path), missing=f"no such plan: {path}",
                                  not_json="is not a readable JSON plan")
        try:
            return cls.from_dict(data)
        except PlanError as exc:
            raise PlanError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """A plan from parsed JSON, every value checked (:mod:`plumber.records.planchecks`).

        Relative cache paths come back resolved inside plumber's data cache folder.
        """
        if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
            raise PlanError("not a plumber plan (no \"kind\": \"plumber-plan\")")
        try:
            jsonfile.checked_schema_version(data, PLAN_SCHEMA_VERSION, "plan")
        except jsonfile.SchemaVersionError as exc:
            raise PlanError(str(exc)) from None
        if "script" not in data:
            raise PlanError("malformed plan: no script")
        reader = _Reader(os.cpu_count() or 1, data_cache_dir())
        return cls(
            script=planchecks.text(data["script"], "script"),
            pipelines=reader.pipelines(data.get("pipelines", []), "pipelines"),
            notes=planchecks.texts(data.get("notes", []), "notes"),
            rejected=reader.pipelines(data.get("rejected", []), "rejected"),
        )


def made_for_another_script(plan: Plan, script: Path) -> str | None:
    """A warning when ``plan`` was made for a script of another name, else None.

    Only the file name is compared: a CI checkout or another working folder
    holds the same script under another path.
    """
    planned = Path(plan.script).name
    if planned == script.name:
        return None
    return (f"the plan was made for {planned}, not {script.name}; only stages at the same "
            f"file and line get its settings")


@dataclass(frozen=True)
class _Reader:
    """Builds a plan's pipelines from JSON, checking each value against this machine."""

    cores: int
    cache_folder: Path

    def pipelines(self, data: Any, where: str) -> tuple[PipelinePlan, ...]:
        return tuple(self.pipeline(p, f"{where}[{i}]")
                     for i, p in enumerate(planchecks.items(data, where)))

    def pipeline(self, data: Any, where: str) -> PipelinePlan:
        if not isinstance(data, dict) or "root" not in data or "settings" not in data:
            raise PlanError(f"malformed plan: {where} must be an object with root and settings")
        settings = planchecks.items(data["settings"], f"{where}.settings")
        rates = {name: planchecks.number(data.get(name), f"{where}: {name}") for name in (
            "observed_rate", "predicted_rate", "measured_rate_before", "measured_rate_after",
            "measured_steady_rate_after")}
        return PipelinePlan(
            root=StageRef(**planchecks.stage_ref_values(data["root"], f"{where}.root")),
            settings=tuple(self.setting(s, f"{where}.settings[{i}]")
                           for i, s in enumerate(settings)),
            measured_rates_before=planchecks.numbers(
                data.get("measured_rates_before", []), f"{where}: measured_rates_before"),
            measured_rates_after=planchecks.numbers(
                data.get("measured_rates_after", []), f"{where}: measured_rates_after"),
            predicted_for=planchecks.optional_text(data.get("predicted_for"),
                                                   f"{where}: predicted_for"),
            **rates,
        )

    def setting(self, data: Any, where: str) -> StageSetting:
        planchecks.check_setting_keys(data, where)
        stage = StageRef(**planchecks.stage_ref_values(data["stage"], f"{where}.stage"))
        values = planchecks.setting_values(data, stage, self.cores, self.cache_folder)
        return StageSetting(stage=stage, **values)


def portable_path(file: str, script_dir: Path) -> str:
    """``file`` relative to the script's folder when inside it, else absolute."""
    try:
        relative = os.path.relpath(file, script_dir)
    except ValueError:
        return file
    return file if relative.startswith(os.pardir) else relative


def resolve_path(file: str, script_dir: Path) -> str:
    """Inverse of :func:`portable_path`: an absolute path."""
    return file if os.path.isabs(file) else os.path.normpath(os.path.join(script_dir, file))
