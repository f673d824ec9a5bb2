"""Benchmark: plumber's tuned DataLoaders against as-written, the common heuristic and a grid.

For each workload in ``benchmarks/torch/`` (each prints its own throughput,
samples per second over all its epochs):

1. profile it once to learn its loader and transforms (source line, stage ids);
2. ``plumber tune`` (model only), timed, its predicted and measured rates kept;
3. a grid: ``num_workers`` in 0, 1, 2, 4, 8, 16, 32 x ``persistent_workers``
   x a sample cache after the last deterministic transform or none, each
   measured once, timed, best kept;
4. a final round: as written, the heuristic (``num_workers`` = cores,
   ``pin_memory=True``), grid best and plumber, interleaved ``--repeats``
   times; medians and ratios to the grid's best.

    python benchmarks/torch_vs_grid.py [--repeats 3] [--workloads slow_fetch ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tune_vs_grid import final_rounds, measure, plumber, ref, say, tune

from plumber.records.plan import PipelinePlan, Plan, StageSetting
from plumber.records.profile import Pipeline, Profile, Stage

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "torch"
GRID_WORKERS = (0, 1, 2, 4, 8, 16, 32)


def loader_of(script: Path, work: Path) -> Pipeline:
    out = work / "profile"
    proc = plumber("profile", "-o", str(out), "--cpu-probe", "0", str(script))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    (pipeline,) = Profile.load(out / "profile.json").pipelines
    return pipeline


def last_deterministic(pipeline: Pipeline) -> Stage | None:
    """The stage after which a sample cache is still correct: before the first random one."""
    chain = [s for s in pipeline.stages if s.kind in ("source", "map")]
    kept = None
    for stage in chain:
        if stage.knobs.get("random"):
            break
        kept = stage
    return kept


def plan_file(work: Path, name: str, script: Path, pipeline: Pipeline, workers: int,
              persistent: bool | None = None, pin: bool | None = None,
              cache_after: Stage | None = None) -> Path:
    pool = pipeline.stage("workers")
    settings = [StageSetting(ref(pool, script), pool.id, parallelism=workers,
                             persistent_workers=persistent if workers else None,
                             pin_memory=pin)]
    if cache_after is not None:
        settings.append(StageSetting(ref(cache_after, script), cache_after.id, cache="memory"))
    plan = Plan(script=str(script), pipelines=(PipelinePlan(
        root=ref(pool, script), settings=tuple(settings)),))
    return plan.save(work / f"{name}.json")


def grid_plans(work: Path, script: Path, pipeline: Pipeline):
    cacheable = last_deterministic(pipeline)
    for workers, persistent, cache in itertools.product(
        GRID_WORKERS, (False, True), (None, cacheable) if cacheable else (None,)
    ):
        if workers == 0 and persistent:
            continue
        label = (f"num_workers={workers}{' persistent' if persistent else ''}"
                 f"{f' +cache after {cache.id}' if cache else ''}")
        yield label, plan_file(work, f"grid-{workers}-{persistent}-{cache is not None}",
                               script, pipeline, workers, persistent, None, cache)


def benchmark(script: Path, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pipeline = loader_of(script, work)
        say(f"{script.stem}: plumber tune")
        model_plan, model_s, model_error = tune(work, script, "plumber")
        say(f"{script.stem}: grid")
        grid_start, grid = time.perf_counter(), {}
        for label, path in grid_plans(work, script, pipeline):
            grid[label] = (measure(script, path), path)
            say(f"  {label}: {grid[label][0]:.1f}/s")
        grid_s = time.perf_counter() - grid_start
        best_label = max(grid, key=lambda k: grid[k][0])
        cores = os.cpu_count() or 1
        configs = {
            "as written": None,
            "heuristic": plan_file(work, "heuristic", script, pipeline, cores, pin=True),
            "grid best": grid[best_label][1],
            "plumber": model_plan,
        }
        rates = final_rounds(script.stem, configs, repeats, lambda plan: measure(script, plan))
        return {
            "medians": {k: statistics.median(v) for k, v in rates.items()},
            "best_label": best_label, "grid_s": grid_s, "grid_runs": len(grid),
            "model_s": model_s, "model_error": model_error,
            "plan": describe(Plan.load(model_plan)),
        }


def describe(plan: Plan) -> str:
    if not plan.pipelines:
        return "no change: " + "; ".join(plan.notes)
    parts = []
    for s in plan.pipelines[0].settings:
        knobs = [f"num_workers={s.parallelism}" if s.parallelism is not None else "",
                 "persistent" if s.persistent_workers else "",
                 f"cache {s.cache}" if s.cache else ""]
        parts.append(f"{s.stage_id}: {' '.join(k for k in knobs if k)}")
    return "; ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", nargs="*", default=None)
    args = parser.parse_args()
    names = args.workloads or sorted(
        p.stem for p in WORKLOADS.glob("*.py") if p.stem != "images"
    )
    results = {name: benchmark(WORKLOADS / f"{name}.py", args.repeats) for name in names}
    columns = ("as written", "heuristic", "grid best", "plumber")
    print(f"Throughput, samples/s (median of {args.repeats}, interleaved); "
          f"ratio to the grid's best in brackets")
    print("| workload | " + " | ".join(columns) + " | grid best is | plumber's plan |")
    print("|---|" + "---|" * (len(columns) + 2))
    for name, r in results.items():
        best = r["medians"]["grid best"]
        cells = [f"{r['medians'][c]:,.0f} ({r['medians'][c] / best:.2f})" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['best_label']} | {r['plan']} |")
    print()
    print("| workload | plumber tune s | grid s (runs) | prediction error |")
    print("|---|---|---|---|")
    for name, r in results.items():
        error = r["model_error"]
        shown = "n/a (no change kept)" if error is None else f"{error:.0%}"
        print(f"| {name} | {r['model_s']:.0f} | {r['grid_s']:.0f} ({r['grid_runs']}) | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
