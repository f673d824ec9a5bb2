"""Benchmark: throughput of example pipelines with and without ``plumber profile``.

Each workload prints its own steady-state throughput (``THROUGHPUT x``,
elements per second, measured inside the script so interpreter and
TensorFlow start-up are excluded). Plain and profiled runs are interleaved
(A B A B ...) so machine noise hits both alike; the table reports medians,
the profiled/plain ratio (goal: >= 0.95) and the extra wall time of a whole
profiled run (post-run CPU probes and report writing). With ``--hotspots``
a third run, ``plumber profile --hotspots`` (py-spy sampling the Python
stacks), is interleaved with the two and reported beside them.

    python benchmarks/overhead.py [--repeats 5] [--workloads cpu_map tiny_steps] [--hotspots]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
THROUGHPUT = re.compile(r"^THROUGHPUT ([0-9.]+)$", re.MULTILINE)


def run_once(script: Path, profiled: bool, out_dir: Path,
             options: tuple[str, ...] = ()) -> tuple[float, float]:
    """(throughput, wall seconds of the whole command) of one run; ``options`` go to profile."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if profiled:
        command = [sys.executable, "-m", "plumber", "profile", "-o", str(out_dir), *options,
                   str(script)]
    else:
        command = [sys.executable, str(script)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    match = THROUGHPUT.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1)), wall


def run_wrapped(wrapper: Path, script: Path, report: Path, profiled: bool, out_dir: Path,
                env: dict[str, str] | None = None,
                options: tuple[str, ...] = ()) -> tuple[float, Any]:
    """Run ``script`` through ``wrapper``, which writes what it measured to ``report`` as
    JSON, plain or under ``plumber profile --cpu-probe 0`` (and ``options``):
    (throughput, that JSON)."""
    wrapped = [str(script), str(report)]
    command = [sys.executable, str(wrapper), *wrapped]
    if profiled:
        command = [sys.executable, "-m", "plumber", "profile", "-o", str(out_dir),
                   "--cpu-probe", "0", *options, str(wrapper), "--", *wrapped]
    proc = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
                          check=False)
    match = THROUGHPUT.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1)), json.loads(report.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", nargs="*", default=None)
    parser.add_argument("--hotspots", action="store_true",
                        help="also run `plumber profile --hotspots` (py-spy) each repeat")
    args = parser.parse_args()
    names = args.workloads or sorted(p.stem for p in WORKLOADS.glob("*.py"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            script = WORKLOADS / f"{name}.py"
            plain, profiled, sampled = [], [], []
            for i in range(args.repeats):
                print(f"{name}: repeat {i + 1}/{args.repeats}", file=sys.stderr, flush=True)
                plain.append(run_once(script, False, Path(tmp) / f"{name}-{i}"))
                profiled.append(run_once(script, True, Path(tmp) / f"{name}-{i}"))
                if args.hotspots:
                    sampled.append(run_once(script, True, Path(tmp) / f"{name}-{i}-hotspots",
                                            ("--hotspots",)))
            rate_plain = statistics.median(r for r, _ in plain)
            rate_prof = statistics.median(r for r, _ in profiled)
            wall_plain = statistics.median(w for _, w in plain)
            wall_prof = statistics.median(w for _, w in profiled)
            row = [name, f"{rate_plain:,.0f}", f"{rate_prof:,.0f}",
                   f"{rate_prof / rate_plain:.3f}", f"{wall_plain:.1f}", f"{wall_prof:.1f}"]
            if args.hotspots:
                rate_hot = statistics.median(r for r, _ in sampled)
                row += [f"{rate_hot:,.0f}", f"{rate_hot / rate_plain:.3f}",
                        f"{statistics.median(w for _, w in sampled):.1f}"]
            rows.append(row)
    header = ["workload", "plain elem/s", "profiled elem/s", "ratio", "plain run s",
              "profiled run s"]
    if args.hotspots:
        header += ["--hotspots elem/s", "ratio", "--hotspots run s"]
    header.append(f"(medians of {args.repeats}, interleaved)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
