"""Benchmark: pipelines reading from S3 at two latencies, tuned by plumber vs the alternatives.

Starts the loopback S3 server (``examples/objectstore/server.py``, in its own
process so its CPU is not the pipeline's) once per injected latency, and runs
both object-storage examples against it, each reading one object per sample
for ``--epochs`` passes over ``--images`` images:

- PyTorch (``torch_s3_images.py``): as written (2 workers), the heuristic
  (``num_workers`` = cores, ``pin_memory``), a grid over ``num_workers``
  (2 to 64) x persistent workers x a sample cache after the deterministic
  transforms, and ``plumber tune``;
- tf.data (``tf_s3_images.py``): as written (the fetching map sequential),
  AUTOTUNE on every knob, a grid over the map's parallelism (with a thread
  pool to match) x keeping the fetched objects in memory or not
  (:mod:`plumber.caching.objectcache`), and ``plumber tune``.

The final round interleaves the configurations ``--repeats`` times; the
table gives medians (images/s) and ratios to the grid's best.

    python benchmarks/objectstore_vs_grid.py [--latencies 5ms 50ms] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "objectstore"
sys.path[:0] = [str(HERE), str(EXAMPLES)]

import torch_vs_grid  # noqa: E402
import tune_vs_grid  # noqa: E402
from server import S3ServerProcess, parse_duration  # noqa: E402
from tune_vs_grid import final_rounds, say  # noqa: E402

from plumber.records.plan import Plan  # noqa: E402
from plumber.records.profile import Profile  # noqa: E402

RATE = re.compile(r"^done: .*\(([0-9.]+) images/s\)$", re.MULTILINE)
TORCH_WORKERS = (2, 4, 8, 16, 32, 64)
TF_PARALLELISM = (1, 2, 4, 8, 16, 32, 64, -1)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def script_args(endpoint: str, images: int, epochs: int, batch: int) -> list[str]:
    return ["--", "--endpoint", endpoint, "--images", str(images), "--batch-size", str(batch),
            "--steps", str(epochs * images // batch)]


def run(script: Path, args: list[str], plan: Path | None) -> float:
    command = [sys.executable, "-m", "plumber", "run", "--plan", str(plan), str(script), *args]
    if plan is None:
        command = [sys.executable, str(script), *args[1:]]
    proc = subprocess.run(command, capture_output=True, text=True, env=ENV, check=False)
    match = RATE.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{script.name} with {plan} failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1))


def profiled(script: Path, args: list[str], work: Path):
    proc = subprocess.run([sys.executable, "-m", "plumber", "profile", "-o", str(work / "p"),
                           "--cpu-probe", "0", str(script), *args],
                          capture_output=True, text=True, env=ENV, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    (pipeline,) = Profile.load(work / "p" / "profile.json").pipelines
    return pipeline


def tune(script: Path, args: list[str], work: Path) -> tuple[Path, float, Plan]:
    path = work / "plumber.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "plumber", "tune", "-o", str(path),
                           "--rounds", "1", str(script), *args],
                          capture_output=True, text=True, env=ENV, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return path, time.perf_counter() - start, Plan.load(path)


def torch_configs(script: Path, args: list[str], work: Path) -> tuple[dict, dict]:
    pipeline = profiled(script, args, work)
    cacheable = torch_vs_grid.last_deterministic(pipeline)
    grid = {}
    for workers in TORCH_WORKERS:
        for persistent in (False, True):
            for cache in (None, cacheable) if cacheable else (None,):
                label = (f"num_workers={workers}{' persistent' if persistent else ''}"
                         f"{' +cache' if cache else ''}")
                grid[label] = torch_vs_grid.plan_file(
                    work, f"grid-{workers}-{persistent}-{cache is not None}", script, pipeline,
                    workers, persistent, None, cache)
    baseline = {
        "as written": None,
        "heuristic": torch_vs_grid.plan_file(work, "heuristic", script, pipeline,
                                             os.cpu_count() or 1, pin=True),
    }
    return baseline, grid


def tf_configs(script: Path, args: list[str], work: Path) -> tuple[dict, dict]:
    pipeline = profiled(script, args, work)
    written = [s for s in pipeline.stages if s.written and s.source and s.nested_in is None]
    fetch = next(s for s in written if s.kind == "map")
    root = written[-1]
    grid = {}
    for p in TF_PARALLELISM:
        for objects in (None, "memory"):
            threads = p + 2 if p > 2 else None
            settings = [tune_vs_grid.StageSetting(tune_vs_grid.ref(fetch, script), fetch.id,
                                                  parallelism=p, object_cache=objects),
                        tune_vs_grid.StageSetting(tune_vs_grid.ref(root, script), root.id,
                                                  threads=threads, prefetch=-1)]
            label = (f"map parallelism={p if p > 0 else 'AUTOTUNE'}"
                     f"{' +objects kept' if objects else ''}")
            grid[label] = tune_vs_grid.plan_file(work, f"grid-{p}-{objects}", script, root,
                                                 settings)
    baseline = {"as written": None,
                "AUTOTUNE": tune_vs_grid.autotune_plan(work, script, written)}
    return baseline, grid


def benchmark(name: str, script: Path, configs, args: list[str], repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        baseline, grid_plans = configs(script, args, work)
        say(f"{name}: plumber tune")
        plan_path, tune_s, plan = tune(script, args, work)
        say(f"{name}: grid of {len(grid_plans)}")
        grid_start, grid = time.perf_counter(), {}
        for label, path in grid_plans.items():
            grid[label] = run(script, args, path)
            say(f"  {label}: {grid[label]:.1f} images/s")
        grid_s = time.perf_counter() - grid_start
        best = max(grid, key=grid.get)
        final = {**baseline, "grid best": grid_plans[best], "plumber": plan_path}
        rates = final_rounds(name, final, repeats, lambda path: run(script, args, path))
        return {"medians": {k: statistics.median(v) for k, v in rates.items()},
                "best": best, "grid_s": grid_s, "runs": len(grid), "tune_s": tune_s,
                "plan": torch_vs_grid.describe(plan) if "torch" in name else describe_tf(plan)}


def describe_tf(plan: Plan) -> str:
    if not plan.pipelines:
        return "no change: " + "; ".join(plan.notes)
    return "; ".join(
        f"{s.stage_id}: " + " ".join(
            k for k in (f"parallelism={s.parallelism}" if s.parallelism else "",
                        f"threads={s.threads}" if s.threads else "",
                        f"cache {s.cache}" if s.cache else "",
                        f"objects kept ({s.object_cache})" if s.object_cache else "") if k)
        for s in plan.pipelines[0].settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latencies", nargs="+", type=parse_duration, default=[0.005, 0.05])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frameworks", nargs="+", default=["torch", "tf"])
    args = parser.parse_args()
    workloads = {"torch": (EXAMPLES / "torch_s3_images.py", torch_configs),
                 "tf": (EXAMPLES / "tf_s3_images.py", tf_configs)}
    rows = []
    for latency in args.latencies:
        with S3ServerProcess(latency_s=latency) as server:
            script_arguments = script_args(server.endpoint_url, args.images, args.epochs,
                                           args.batch_size)
            for framework in args.frameworks:
                script, configs = workloads[framework]
                name = f"{framework} @ {latency * 1e3:g} ms"
                rows.append((name, benchmark(name, script, configs, script_arguments,
                                             args.repeats)))
    print(f"Images/s (median of {args.repeats}, interleaved; {args.images} images x "
          f"{args.epochs} epochs, batch {args.batch_size}); ratio to the grid's best in brackets")
    print("| workload | as written | AUTOTUNE / heuristic | grid best | plumber | plumber vs "
          "as written | grid best is | plumber's plan |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        m = r["medians"]
        best = m["grid best"]
        other = m.get("heuristic", m.get("AUTOTUNE"))
        cells = [f"{v:,.0f} ({v / best:.2f})" for v in (m["as written"], other, best,
                                                          m["plumber"])]
        print(f"| {name} | " + " | ".join(cells) +
              f" | {m['plumber'] / m['as written']:.1f}x | {r['best']} | {r['plan']} |")
    print()
    print("| workload | plumber tune s | grid s (runs) |")
    print("|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['tune_s']:.0f} | {r['grid_s']:.0f} ({r['runs']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
