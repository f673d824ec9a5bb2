"""Benchmark: plumber's tuned plan on the real-world scripts, against as written and a grid.

For each script in ``tests/realworld/`` (adapted from public training code;
each prints ``THROUGHPUT x``: training batches per second over its whole
training loop, the unit of plumber's rates, root elements per second):

1. ``plumber tune --rounds 1`` on it, timed; its profile names the stages;
2. a grid, each point applied by ``plumber run --plan`` with a hand-made plan
   and measured once: for tf.data the main map's ``num_parallel_calls`` in
   1, 2, 4 and AUTOTUNE, with and without a cache after it where a cache is
   safe (nothing random at or before it); for a torch DataLoader
   ``num_workers`` in 0, 1, 2, 4. The main map is the one a plan can set
   that spent the most time in the training pipeline (the one that
   delivered the most batches);
3. a final round: as written (the script run plainly), the grid's best and
   plumber's plan, interleaved ``--repeats`` times; medians and ratios;
4. plumber's prediction error: the predicted rate tune wrote for the
   training pipeline against the median measured in the final round.

    python benchmarks/realworld_vs_grid.py [--repeats 3] [--workloads tf_imagenet_input ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch_vs_grid
import tune_vs_grid
from tune_vs_grid import final_rounds, measure, say, tune

from plumber.analyzers.edits import profiled_pipeline
from plumber.analyzers.topology import POOL, below, is_random
from plumber.records.appliable import appliable
from plumber.records.plan import Plan, StageSetting
from plumber.records.profile import Pipeline, Profile, Stage

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent / "tests" / "realworld"
TF_PARALLELISM = (1, 2, 4, -1)
TORCH_WORKERS = (0, 1, 2, 4)


@dataclass(frozen=True)
class Workload:
    """One real-world script and the arguments it runs with ({data}: its data folder)."""

    script: str
    args: tuple[str, ...]

    @property
    def path(self) -> Path:
        return SCRIPTS / f"{self.script}.py"

    def arguments(self, data: Path) -> list[str]:
        return [a.replace("{data}", str(data / self.script)) for a in self.args]


#: The tests' data sizes, with epochs enough for some 2-5 s of training per run as
#: written (startup takes longer), so that the whole benchmark takes some 15-25 minutes
#: on 2 cores.
WORKLOADS = {
    w.script: w for w in (
        Workload("tf_imagenet_input", ("--data-dir", "{data}", "--epochs", "10")),
        Workload("keras_image_classification", ("--data-dir", "{data}", "--epochs", "8")),
        Workload("tf_custom_epoch_loop", ("--data-dir", "{data}", "--epochs", "10")),
        Workload("torchvision_classification", ("--data-path", "{data}", "--epochs", "4")),
        Workload("torch_text_classification", ("--epochs", "20")),
    )
}


def training_pipeline(profile: Profile) -> Pipeline:
    """The pipeline the script trains on: the one whose consumer took the most batches."""
    return max(profile.pipelines, key=lambda p: p.consumer.steps if p.consumer else 0)


def written_root(pipeline: Pipeline) -> Stage:
    """The outermost top-level stage the user wrote, which names the pipeline in a plan."""
    return [s for s in pipeline.stages if s.written and s.source and s.nested_in is None][-1]


def main_map(pipeline: Pipeline) -> Stage:
    """The map a plan can set that spent the most time (wall, else CPU)."""
    maps = [s for s in pipeline.stages if s.kind == "map" and appliable(pipeline, s)]
    if not maps:
        raise RuntimeError(f"{pipeline.id}: no map a plan can set")
    return max(maps, key=lambda s: (s.stats.wall_time_s or s.stats.cpu_time_s or 0.0)
               if s.stats else 0.0)


def cache_is_safe(pipeline: Pipeline, stage: Stage) -> bool:
    """Nothing at or before ``stage`` differs between epochs, so a cache after it is correct."""
    by_id = {s.id: s for s in pipeline.stages}
    return not any(is_random(by_id[i]) for i in below(pipeline, stage.id))


def tf_grid(work: Path, script: Path, pipeline: Pipeline) -> Iterator[tuple[str, Path]]:
    """Plans setting only the main map's parallelism, and a cache after it where safe."""
    stage, root = main_map(pipeline), written_root(pipeline)
    caches = (None, "memory") if cache_is_safe(pipeline, stage) else (None,)
    for p in TF_PARALLELISM:
        for cache in caches:
            setting = StageSetting(tune_vs_grid.ref(stage, script), stage.id, parallelism=p,
                                   cache=cache)
            label = (f"{stage.id} num_parallel_calls={p if p > 0 else 'AUTOTUNE'}"
                     f"{' +cache' if cache else ''}")
            yield label, tune_vs_grid.plan_file(work, f"grid-{p}-{cache}", script, root,
                                                [setting])


def torch_grid(work: Path, script: Path, pipeline: Pipeline) -> Iterator[tuple[str, Path]]:
    """Plans setting only the DataLoader's ``num_workers``."""
    for workers in TORCH_WORKERS:
        yield f"num_workers={workers}", torch_vs_grid.plan_file(
            work, f"grid-{workers}", script, pipeline, workers)


def predicted_rate(plan: Plan, profile: Profile, pipeline: Pipeline, script: Path) -> float | None:
    """The rate tune's model predicted for ``pipeline`` under the kept plan, if any."""
    for planned in plan.pipelines:
        matched = profiled_pipeline(planned, profile, script.parent)
        if matched is not None and matched.id == pipeline.id:
            return planned.predicted_rate
    return None


def benchmark(workload: Workload, data: Path, repeats: int) -> dict:
    script, args = workload.path, workload.arguments(data)

    def rate(plan: Path | None) -> float:
        return measure(script, plan, args)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        say(f"{workload.script}: plumber tune")
        plan_path, tune_s, _ = tune(work, script, "plumber", script_args=args)
        plan = Plan.load(plan_path)
        profile = Profile.load(work / "profile.json")
        pipeline = training_pipeline(profile)
        say(f"  plan: {describe(plan)}" + "".join(f"\n  {note}" for note in plan.notes))
        say(f"{workload.script}: grid")
        is_torch = any(s.kind == POOL for s in pipeline.stages)
        points = (torch_grid if is_torch else tf_grid)(work, script, pipeline)
        grid_start, grid = time.perf_counter(), {}
        for label, path in points:
            grid[label] = (rate(path), path)
            say(f"  {label}: {grid[label][0]:.2f} batches/s")
        grid_s = time.perf_counter() - grid_start
        best_label = max(grid, key=lambda k: grid[k][0])
        configs = {"as written": None, "grid best": grid[best_label][1], "plumber": plan_path}
        runs = final_rounds(workload.script, configs, repeats, rate)
        medians = {k: statistics.median(v) for k, v in runs.items()}
        say("  medians: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))
        return {
            "medians": medians, "runs": runs, "best_label": best_label,
            "grid_s": grid_s, "grid_runs": len(grid), "tune_s": tune_s,
            "predicted": predicted_rate(plan, profile, pipeline, script), "plan": describe(plan),
            "notes": plan.notes,
        }


def describe(plan: Plan) -> str:
    """The kept plan's settings in a few words, or that nothing was kept (its notes say why)."""
    if not plan.pipelines:
        return "dropped: measured not faster" if plan.rejected else "no change recommended"
    parts = []
    for pipeline in plan.pipelines:
        for s in pipeline.settings:
            knobs = [f"parallelism={'AUTOTUNE' if s.parallelism == -1 else s.parallelism}"
                     if s.parallelism is not None else "",
                     f"cache {s.cache}" if s.cache else "",
                     f"prefetch={s.prefetch}" if s.prefetch is not None else "",
                     f"pool={s.threads}" if s.threads else "",
                     f"persistent={s.persistent_workers}"
                     if s.persistent_workers is not None else "",
                     f"pin_memory={s.pin_memory}" if s.pin_memory is not None else ""]
            parts.append(f"{s.stage_id} {' '.join(k for k in knobs if k)}")
    return "; ".join(parts)


def prediction_error(predicted: float | None, measured: float) -> str:
    if predicted is None:
        return "no prediction"
    return f"{abs(predicted - measured) / measured:.0%} (predicted {predicted:.2f})"


def print_tables(results: dict[str, dict], repeats: int) -> None:
    columns = ("as written", "grid best", "plumber")
    print(f"Training batches/s (median of {repeats}, interleaved); "
          f"plumber's ratio to as written and to the grid's best")
    print("| workload | " + " | ".join(columns)
          + " | plumber / as written | plumber / grid best | grid best is |")
    print("|---|" + "---|" * (len(columns) + 3))
    for name, r in results.items():
        m = r["medians"]
        cells = [f"{m[c]:.2f}" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + f" | {m['plumber'] / m['as written']:.2f} | "
              f"{m['plumber'] / m['grid best']:.2f} | {r['best_label']} |")
    print()
    print("| workload | plumber's plan | prediction error (vs. final-round median) | "
          "tune s | grid s (runs) |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['plan']} | "
              f"{prediction_error(r['predicted'], r['medians']['plumber'])} | "
              f"{r['tune_s']:.0f} | {r['grid_s']:.0f} ({r['grid_runs']}) |")
    for name, r in results.items():
        for note in r["notes"]:
            print(f"- {name}: {note}")
    print()
    print("tune s includes writing the workload's data once (its first run). The prediction is "
          "the model's steady rate; the scripts' rate covers the whole loop, first steps included.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", nargs="*", default=None, choices=sorted(WORKLOADS))
    args = parser.parse_args()
    names = args.workloads or list(WORKLOADS)
    start = time.perf_counter()
    results, failed = {}, {}
    with tempfile.TemporaryDirectory(prefix="realworld-data-") as data:
        for name in names:
            try:
                results[name] = benchmark(WORKLOADS[name], Path(data), args.repeats)
            except RuntimeError as error:
                lines = str(error).strip().splitlines()
                failed[name] = lines[-1] if lines else "(no message)"
                say(f"{name} failed: {error}")
    print_tables(results, args.repeats)
    for name, last_line in failed.items():
        print(f"- {name}: FAILED, not measured: {last_line}")
    for name, r in results.items():
        for config, runs in r["runs"].items():
            say(f"{name} {config}: " + ", ".join(f"{x:.2f}" for x in runs))
    say(f"total {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
