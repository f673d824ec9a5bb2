"""Benchmark: plumber's tuned pipelines against as-written, AUTOTUNE and a grid search.

For each workload in ``benchmarks/tuning/`` (each prints its own throughput,
elements per second over all its epochs):

1. profile it once to learn its stages (source lines);
2. ``plumber tune`` (model only) and ``plumber tune --search 4``, timed;
3. a grid over the first map's parallelism (1, 2, 4, 8, 32, 64 and
   AUTOTUNE; for waiting stages with a thread pool to match) times cache
   after it or not, each measured once, timed, best kept;
4. a final round: as written, AUTOTUNE on every knob, grid best, plumber,
   plumber --search, interleaved ``--repeats`` times; medians and ratios to
   the grid's best.

    python benchmarks/tune_vs_grid.py [--repeats 3] [--workloads multi_epoch ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from plumber.records.plan import PipelinePlan, Plan, StageRef, StageSetting
from plumber.records.profile import Profile

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "tuning"
THROUGHPUT = re.compile(r"^THROUGHPUT ([0-9.]+)$", re.MULTILINE)
GRID_PARALLELISM = (1, 2, 4, 8, 32, 64, -1)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def plumber(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plumber", *args], capture_output=True,
                          text=True, env=ENV, check=False)


def measure(script: Path, plan: Path | None, script_args: Sequence[str] = ()) -> float:
    """The ``THROUGHPUT`` the script prints, run plainly (no plan) or by ``plumber run``."""
    if plan is None:
        proc = subprocess.run([sys.executable, str(script), *script_args], capture_output=True,
                              text=True, env=ENV, check=False)
    else:
        proc = plumber("run", "--plan", str(plan), str(script), "--", *script_args)
    match = THROUGHPUT.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{script} with {plan} failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1))


def stages_of(script: Path, work: Path):
    out = work / "profile"
    proc = plumber("profile", "-o", str(out), "--cpu-probe", "0", str(script))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    (pipeline,) = Profile.load(out / "profile.json").pipelines
    written = [s for s in pipeline.stages if s.written and s.source and s.nested_in is None]
    return pipeline, written


def ref(stage, script: Path) -> StageRef:
    return StageRef.of(stage.source, stage.kind, script.parent)


def plan_file(work: Path, name: str, script: Path, root, settings) -> Path:
    plan = Plan(script=str(script), pipelines=(PipelinePlan(
        root=ref(root, script), settings=tuple(settings)),))
    return plan.save(work / f"{name}.json")


def autotune_plan(work: Path, script: Path, written) -> Path:
    root = written[-1]
    settings = [StageSetting(ref(s, script), s.id, parallelism=-1)
                for s in written if s.kind in ("map", "interleave") and s is not root]
    settings.append(StageSetting(ref(root, script), root.id,
                                 prefetch=-1 if root.kind != "prefetch" else None))
    return plan_file(work, "autotune", script, root, settings)


def grid_plans(work: Path, script: Path, written):
    root = written[-1]
    first_map = next(s for s in written if s.kind == "map")
    cacheable = not (first_map.knobs.get("random") or first_map.knobs.get("stateful"))
    for p, cache in itertools.product(GRID_PARALLELISM, (None, "memory") if cacheable else (None,)):
        threads = p + 2 if p > 2 else None
        settings = [StageSetting(ref(first_map, script), first_map.id, parallelism=p,
                                 cache=cache)]
        settings.append(StageSetting(ref(root, script), root.id, threads=threads,
                                     prefetch=-1 if root.kind != "prefetch" else None))
        yield f"p={p if p > 0 else 'AUTOTUNE'}{' +cache' if cache else ''}", plan_file(
            work, f"grid-{p}-{cache}", script, root, settings)


def tune(work: Path, script: Path, name: str, *extra: str,
         script_args: Sequence[str] = ()) -> tuple[Path, float, float | str]:
    """(plan path, tuning seconds, prediction error) of one plumber tune run.

    The error is the model's prediction against the tuned runs' median, or
    why there is none: no change kept, or settings the model did not predict
    (the search kept other values than the model's).

    tune writes the profile it made beside the plan (``work/profile.json``).
    """
    path = work / f"{name}.json"
    start = time.perf_counter()
    proc = plumber("tune", "-o", str(path), "--rounds", "1", *extra, str(script), "--",
                   *script_args)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    plan = Plan.load(path)
    error: float | str = "n/a (no change kept)"
    if plan.pipelines:
        p = plan.pipelines[0]
        if not p.predicts_these_settings:
            error = "n/a (the search changed the model's settings)"
        elif p.predicted_rate and p.measured_rate_after:
            error = abs(p.predicted_rate - p.measured_rate_after) / p.measured_rate_after
        else:
            error = "n/a (no prediction or no measurement)"
    return path, seconds, error


def describe(path: Path) -> str:
    """A plan file's settings in a few words (``map-0 p=2 +cache; batch-0 prefetch``)."""
    return settings_text(Plan.load(path).pipelines)


def settings_text(pipelines: Sequence[PipelinePlan]) -> str:
    """Pipelines' settings in a few words (``map-0 p=2 +cache; batch-0 prefetch``)."""
    parts = []
    for pipeline in pipelines:
        for s in pipeline.settings:
            knobs = [f"p={'AUTOTUNE' if s.parallelism == -1 else s.parallelism}"
                     if s.parallelism is not None else "",
                     "+cache" if s.cache else "",
                     "+prefetch" if s.prefetch is not None else "",
                     "+persistent" if s.persistent_workers else "",
                     f"pool={s.threads}" if s.threads else ""]
            parts.append(f"{s.stage_id} {' '.join(k for k in knobs if k)}")
    return "; ".join(parts) or "as written"


def benchmark(script: Path, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, written = stages_of(script, work)
        say(f"{script.stem}: plumber tune")
        model_plan, model_s, model_error = tune(work, script, "plumber")
        say(f"{script.stem}: plumber tune --search 4")
        search_plan, search_s, search_error = tune(work, script, "search", "--search", "4")
        say(f"{script.stem}: grid")
        grid_start, grid = time.perf_counter(), {}
        for label, path in grid_plans(work, script, written):
            grid[label] = (measure(script, path), path)
        grid_s = time.perf_counter() - grid_start
        best_label = max(grid, key=lambda k: grid[k][0])
        configs = {
            "as written": None,
            "AUTOTUNE": autotune_plan(work, script, written),
            "grid best": grid[best_label][1],
            "plumber": model_plan,
            "plumber --search": search_plan,
        }
        rates = final_rounds(script.stem, configs, repeats, lambda plan: measure(script, plan))
        return {
            "medians": {k: statistics.median(v) for k, v in rates.items()},
            "best_label": best_label, "grid_s": grid_s, "grid_runs": len(grid),
            "model_s": model_s, "search_s": search_s,
            "model_error": model_error, "search_error": search_error,
            "plans": {"plumber": describe(model_plan), "plumber --search": describe(search_plan)},
            "runs": rates,
        }


def final_rounds(
    name: str, configs: dict[str, Path | None], repeats: int, rate: Callable[[Path | None], float]
) -> dict[str, list[float]]:
    """``rate`` of every configuration, ``repeats`` times, interleaved so that
    a slow spell of the machine falls on all of them alike."""
    rates: dict[str, list[float]] = {label: [] for label in configs}
    for i in range(repeats):
        say(f"{name}: final round {i + 1}/{repeats}")
        for label, plan in configs.items():
            rates[label].append(rate(plan))
    return rates


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", nargs="*", default=None)
    args = parser.parse_args()
    names = args.workloads or sorted(p.stem for p in WORKLOADS.glob("*.py"))
    results = {name: benchmark(WORKLOADS / f"{name}.py", args.repeats) for name in names}
    columns = ("as written", "AUTOTUNE", "grid best", "plumber", "plumber --search")
    print(f"Throughput, elements/s (median of {args.repeats}, interleaved); "
          f"ratio to the grid's best in brackets")
    print("| workload | " + " | ".join(columns) + " | grid best is |")
    print("|---|" + "---|" * (len(columns) + 1))
    for name, r in results.items():
        best = r["medians"]["grid best"]
        cells = [f"{r['medians'][c]:,.0f} ({r['medians'][c] / best:.2f})" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['best_label']} |")
    print()
    print("| workload | plumber tune s | plumber --search s | grid s (runs) | "
          "prediction error (model) | prediction error (search) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        def pct(e):
            return e if isinstance(e, str) else f"{e:.0%}"
        print(f"| {name} | {r['model_s']:.0f} | {r['search_s']:.0f} | "
              f"{r['grid_s']:.0f} ({r['grid_runs']}) | {pct(r['model_error'])} | "
              f"{pct(r['search_error'])} |")
    print()
    print("| workload | plumber's plan | plumber --search's plan |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['plans']['plumber']} | {r['plans']['plumber --search']} |")
    print()
    for name, r in results.items():
        for config, runs in r["runs"].items():
            say(f"{name} {config}: " + ", ".join(f"{x:,.0f}" for x in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
