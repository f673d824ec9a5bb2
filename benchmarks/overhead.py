"""Benchmark: throughput of example pipelines with and without ``plumber profile``.

Each workload prints its own steady-state throughput (``THROUGHPUT x``,
elements per second, measured inside the script so interpreter and
TensorFlow start-up are excluded). Plain and profiled runs are interleaved
(A B A B ...) so machine noise hits both alike; the table reports medians,
the profiled/plain ratio (goal: >= 0.95) and the extra wall time of a whole
profiled run (post-run CPU probes and report writing).

    python benchmarks/overhead.py [--repeats 5] [--workloads cpu_map tiny_steps]
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
WORKLOADS = HERE / "workloads"
THROUGHPUT = re.compile(r"^THROUGHPUT ([0-9.]+)$", re.MULTILINE)


def run_once(script: Path, profiled: bool, out_dir: Path) -> tuple[float, float]:
    """(throughput, wall seconds of the whole command) of one run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if profiled:
        command = [sys.executable, "-m", "plumber", "profile", "-o", str(out_dir), str(script)]
    else:
        command = [sys.executable, str(script)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    match = THROUGHPUT.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1)), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", nargs="*", default=None)
    args = parser.parse_args()
    names = args.workloads or sorted(p.stem for p in WORKLOADS.glob("*.py"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            script = WORKLOADS / f"{name}.py"
            plain, profiled = [], []
            for i in range(args.repeats):
                print(f"{name}: repeat {i + 1}/{args.repeats}", file=sys.stderr, flush=True)
                plain.append(run_once(script, False, Path(tmp) / f"{name}-{i}"))
                profiled.append(run_once(script, True, Path(tmp) / f"{name}-{i}"))
            rate_plain = statistics.median(r for r, _ in plain)
            rate_prof = statistics.median(r for r, _ in profiled)
            wall_plain = statistics.median(w for _, w in plain)
            wall_prof = statistics.median(w for _, w in profiled)
            rows.append((name, rate_plain, rate_prof, rate_prof / rate_plain,
                         wall_plain, wall_prof))
    print(f"| workload | plain elem/s | profiled elem/s | ratio | plain run s | "
          f"profiled run s | (medians of {args.repeats}, interleaved) |")
    print("|---|---|---|---|---|---|---|")
    for name, rp, rq, ratio, wp, wq in rows:
        print(f"| {name} | {rp:,.0f} | {rq:,.0f} | {ratio:.3f} | {wp:.1f} | {wq:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
