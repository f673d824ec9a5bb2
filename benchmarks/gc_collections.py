"""Benchmark: the full garbage collections a workload makes, plain and under ``plumber profile``.

plumber's own objects count among those that survived a collection, so
without care they move when the script's full (generation 2) collections
fall due (plumber/capture/gcfreeze.py). Each workload runs through a small
wrapper that records every collection with ``gc.callbacks``, plain and
profiled, interleaved; the table gives per configuration the median count
of full collections, their median total time and the median throughput.
Counts and pause times are steadier than throughput on a shared machine.

    python benchmarks/gc_collections.py [--repeats 3] [--workloads torch_workers ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from overhead import WORKLOADS, run_wrapped

DEFAULT = ("torch_workers", "torch_long_epochs", "cpu_map")

#: Runs the workload given as its first argument, then writes its full collections as JSON.
WRAPPER = '''
import gc, json, os, runpy, sys, time
script, report = sys.argv[1], sys.argv[2]
sys.argv = [script]
sys.path.insert(0, os.path.dirname(script))
full, started = [], []
def watch(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        started.append(time.perf_counter())
    else:
        full.append(time.perf_counter() - started.pop())
gc.callbacks.append(watch)
try:
    runpy.run_path(script, run_name="__main__")
finally:
    gc.callbacks.remove(watch)
    with open(report, "w") as out:
        json.dump(full, out)
'''


def run_once(wrapper: Path, script: Path, profiled: bool, tmp: Path) -> tuple[int, float, float]:
    """(full collections, their seconds, throughput) of one run."""
    rate, pauses = run_wrapped(wrapper, script, tmp / "full.json", profiled, tmp / "out")
    return len(pauses), sum(pauses), rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", nargs="*", default=list(DEFAULT))
    args = parser.parse_args()
    print(f"{'workload':<20} {'run':<9} {'full GCs':>8} {'their ms':>9} {'elem/s':>8}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wrapper = tmp / "collections_of.py"
        wrapper.write_text(WRAPPER)
        for name in args.workloads:
            script = WORKLOADS / f"{name}.py"
            runs: dict[str, list[tuple[int, float, float]]] = {"plain": [], "profiled": []}
            for _ in range(args.repeats):
                for label in runs:
                    runs[label].append(run_once(wrapper, script, label == "profiled", tmp))
            for label, rows in runs.items():
                count = statistics.median(r[0] for r in rows)
                pause_ms = statistics.median(r[1] for r in rows) * 1e3
                rate = statistics.median(r[2] for r in rows)
                print(f"{name:<20} {label:<9} {count:>8g} {pause_ms:>9.0f} {rate:>8,.0f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
