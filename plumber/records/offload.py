"""A plan's offload section: the cut a ``--data-service`` run inserts ``distribute`` at.

The section sits in the plan file under ``"offload"``, beside the per-stage
settings :class:`plumber.records.plan.Plan` reads (which leaves it alone), so
``plumber run --plan PLAN --data-service grpc://HOST:PORT`` finds it in the
plan the user already passes. ``plumber service plan`` writes it from a
profile's analysis; ``plumber tune`` writing its plan over one for the same
script keeps the section (:func:`save_keeping_offload`). The cut is the
last stage that runs on the service's workers, named as the user wrote it
(:class:`plumber.records.plan.StageRef`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from plumber.records import jsonfile, planchecks
from plumber.records.plan import PLAN_KIND, PLAN_SCHEMA_VERSION, Plan, StageRef
from plumber.records.planchecks import PlanError

#: The key of the section in a plan file.
SECTION = "offload"

#: tf.data service's processing modes (docs/data-service.md says what each yields).
PROCESSING_MODES = ("distributed_epoch", "parallel_epochs")

#: The most requests a plan may keep outstanding (each holds an element in memory).
MAX_OUTSTANDING = 4096


@dataclass(frozen=True)
class OffloadPlan:
    """Where to cut, how, and what the model expects of it.

    ``predicted_rate`` is the model's rate with ``workers`` workers, and
    ``rates`` its rate with 1, 2, ... ``workers`` (empty in plans written
    before they were recorded), each worker on a host like the one profiled.
    """

    cut: StageRef
    stage_id: str
    processing_mode: str
    max_outstanding_requests: int
    workers: int
    predicted_rate: float | None = None
    reason: str = ""
    rates: tuple[float | None, ...] = ()

    @classmethod
    def from_dict(cls, data: Any, where: str = SECTION) -> OffloadPlan:
        """The section from parsed JSON, every value checked."""
        planchecks._keys(data, where, {f.name for f in _FIELDS},
                         {"cut", "stage_id", "processing_mode", "max_outstanding_requests",
                          "workers"})
        mode = planchecks.text(data["processing_mode"], f"{where}: processing_mode")
        if mode not in PROCESSING_MODES:
            raise PlanError(f"{where}: processing_mode must be one of "
                            f"{', '.join(PROCESSING_MODES)}, not {mode!r}")
        return cls(
            cut=StageRef(**planchecks.stage_ref_values(data["cut"], f"{where}.cut")),
            stage_id=planchecks.text(data["stage_id"], f"{where}: stage_id"),
            processing_mode=mode,
            max_outstanding_requests=planchecks.integer(
                data["max_outstanding_requests"], f"{where}: max_outstanding_requests", 1,
                MAX_OUTSTANDING),
            workers=planchecks.integer(data["workers"], f"{where}: workers", 1, None),
            predicted_rate=planchecks.number(data.get("predicted_rate"),
                                             f"{where}: predicted_rate"),
            reason=planchecks.text(data.get("reason", ""), f"{where}: reason"),
            rates=planchecks.numbers(data.get("rates", []), f"{where}: rates"),
        )


_FIELDS = OffloadPlan.__dataclass_fields__.values()


def read_offload(path: str | Path) -> OffloadPlan | None:
    """The offload section of the plan at ``path``; None when it has none.

    Raises :class:`PlanError` for a file that is not a plan or a section
    that does not check.
    """
    data = jsonfile.read_json(path, PlanError, str(path), missing=f"no such plan: {path}",
                              not_json="is not a readable JSON plan")
    if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
        raise PlanError(f"{path}: not a plumber plan (no \"kind\": \"plumber-plan\")")
    if data.get(SECTION) is None:
        return None
    try:
        return OffloadPlan.from_dict(data[SECTION])
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from None


def write_offload(path: str | Path, offload: OffloadPlan, script: str) -> Path:
    """Put ``offload`` into the plan at ``path`` (a new plan for ``script`` if there is none)."""
    target = Path(path)
    if target.exists():
        data = jsonfile.read_json(target, PlanError, str(target), missing=f"no such plan: {path}",
                                  not_json="is not a readable JSON plan")
        if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
            raise PlanError(f"{path}: not a plumber plan (no \"kind\": \"plumber-plan\")")
    else:
        data = {"script": script, "pipelines": [], "notes": [], "rejected": [],
                "schema_version": PLAN_SCHEMA_VERSION, "kind": PLAN_KIND}
    data[SECTION] = asdict(offload)
    return jsonfile.save_json(target, data)


def save_keeping_offload(plan: Plan, path: str | Path) -> OffloadPlan | None:
    """Write ``plan`` at ``path``, keeping the offload section of the plan it replaces.

    The section is kept only from a plan made for a script of the same name
    (as :func:`plumber.records.plan.made_for_another_script` compares them)
    whose section checks; returns it, or None when there was none to keep.
    """
    kept = _offload_for(path, Path(plan.script).name)
    if kept is None:
        plan.save(path)
    else:
        jsonfile.save_json(path, {**asdict(plan), SECTION: asdict(kept)})
    return kept


def _offload_for(path: str | Path, script_name: str) -> OffloadPlan | None:
    """The offload section of the plan at ``path`` when it was made for ``script_name``."""
    if not Path(path).is_file():
        return None
    try:
        data = jsonfile.read_json(path, PlanError, str(path), missing=f"no such plan: {path}")
    except PlanError:
        return None
    if not isinstance(data, dict) or data.get("kind") != PLAN_KIND or not data.get(SECTION):
        return None
    if Path(str(data.get("script", ""))).name != script_name:
        return None
    try:
        return OffloadPlan.from_dict(data[SECTION])
    except PlanError:
        return None
