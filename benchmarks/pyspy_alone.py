"""Benchmark: what py-spy alone, without plumber, costs a DataLoader with workers.

``plumber profile --hotspots`` runs py-spy beside plumber's own profiling;
this separates the two. Each workload (a script of ``workloads/`` printing
``THROUGHPUT <elements/s>``) runs, interleaved ``--repeats`` times:

- plain;
- under py-spy with the flags plumber uses (``--subprocesses --nonblocking
  --threads --idle`` at plumber's default rate), py-spy launching the script;
- the same without ``--subprocesses`` (the main process only: no worker is
  found or attached to).

It prints the medians, their ratio to plain, and py-spy's own CPU (user +
system, read from its process while it runs) per second of its run.

    python benchmarks/pyspy_alone.py [--repeats 5] [--workloads torch_workers torch_long_epochs]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from plumber.measure.hotspots import DEFAULT_RATE_HZ, SAMPLING_FLAGS, find_py_spy

HERE = Path(__file__).resolve().parent
THROUGHPUT = re.compile(r"^THROUGHPUT ([0-9.]+)$", re.MULTILINE)


def py_spy_flags(subprocesses: bool) -> list[str]:
    """plumber's sampling flags and rate, without ``--subprocesses`` when asked."""
    flags = [f for f in SAMPLING_FLAGS if subprocesses or f != "--subprocesses"]
    return [*flags, "--rate", str(DEFAULT_RATE_HZ)]


def run_once(script: Path, spy: list[str] | None, folder: Path) -> tuple[float, float | None]:
    """The script's throughput, and py-spy's CPU per second of its run (None without it)."""
    command = [sys.executable, str(script)]
    if spy is not None:
        command = [*spy, "--format", "raw", "-o", str(folder / "stacks.txt"), "--", *command]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=folder)
    cpu = None
    if spy is not None:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                times = watched.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                break
            time.sleep(0.1)
    out = process.communicate()[0]
    match = THROUGHPUT.search(out)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"{script.name} failed (exit {process.returncode})")
    return float(match.group(1)), None if cpu is None else cpu / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", nargs="*", default=["torch_workers", "torch_long_epochs"])
    args = parser.parse_args()
    executable = find_py_spy()
    if executable is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    configs = {
        "plain": None,
        "py-spy as plumber runs it": [executable, "record", *py_spy_flags(True)],
        "py-spy, main process only": [executable, "record", *py_spy_flags(False)],
    }
    print(f"| workload | configuration | elem/s (median of {args.repeats}) | / plain "
          f"| py-spy CPU (cores) | runs |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads:
        script = HERE / "workloads" / f"{name}.py"
        rates: dict[str, list[float]] = {c: [] for c in configs}
        cpus: dict[str, list[float]] = {c: [] for c in configs}
        for repeat in range(args.repeats):
            print(f"{name}: repeat {repeat + 1}/{args.repeats}", file=sys.stderr)
            for config, spy in configs.items():
                with tempfile.TemporaryDirectory() as folder:
                    rate, cpu = run_once(script, spy, Path(folder))
                rates[config].append(rate)
                if cpu is not None:
                    cpus[config].append(cpu)
        plain = statistics.median(rates["plain"])
        for config in configs:
            median = statistics.median(rates[config])
            cpu = f"{statistics.median(cpus[config]):.3f}" if cpus[config] else "-"
            runs = ", ".join(f"{r:,.0f}" for r in rates[config])
            print(f"| {name} | {config} | {median:,.0f} | {median / plain:.2f} | {cpu} | {runs} |")


if __name__ == "__main__":
    main()
