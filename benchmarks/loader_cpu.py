"""Benchmark: the CPU a DataLoader workload's processes use, plain and under ``plumber profile``.

plumber times the fetch, each transform and the collation inside the
loader's worker processes (plumber/torch/workerside.py). On a machine whose
cores the workers keep busy, each CPU second that timing costs is a second
the workers do not spend on samples, so the CPU used is the cost, and it
holds steadier than throughput on a shared machine. Each workload runs
through a small wrapper that reads the process's and its reaped children's
CPU (``getrusage``) from the first ``iter()`` of a DataLoader to the end:
the main process's, and the workers' (every epoch's workers have exited
and been reaped by then). Plain and profiled run interleaved; the table
gives the medians and the workers' CPU against plain's. ``--hotspots``
adds runs profiled with ``--hotspots``: py-spy is then a live child of the
profiled process, and its CPU over the same window is a column of its own
(``sampler``), counted in the total. ``--also DIR`` adds, interleaved with
them, runs profiled by the plumber checked out in DIR (another commit, side
by side: ``git worktree add DIR COMMIT``).

    python benchmarks/loader_cpu.py [--repeats 5] [--workloads torch_long_epochs ...]
                                    [--hotspots] [--also DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from overhead import WORKLOADS, run_wrapped

DEFAULT = ("torch_long_epochs", "torch_workers")

#: Runs the workload given as its first argument, then writes the CPU seconds of its window.
WRAPPER = '''
import json, os, resource, runpy, sys
from torch.utils.data import DataLoader
script, report = sys.argv[1], sys.argv[2]
sys.argv = [script]
sys.path.insert(0, os.path.dirname(script))
start = []
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
def live_children():
    import psutil
    used = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            used[child.pid] = times.user + times.system
        except psutil.Error:
            pass
    return used
iterate = DataLoader.__iter__
def first_iter(loader):
    if not start:
        start.append((cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN),
                      live_children()))
    return iterate(loader)
DataLoader.__iter__ = first_iter
runpy.run_path(script, run_name="__main__")
main, workers, alive = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), live_children()
sampler = sum(used - start[0][2].get(pid, 0.0) for pid, used in alive.items())
with open(report, "w") as out:
    json.dump({"main": main - start[0][0], "workers": workers - start[0][1],
               "sampler": sampler}, out)
'''


class Run(NamedTuple):
    """What one run used from the loader's first ``iter()`` on, and its throughput."""

    main_s: float
    workers_s: float
    sampler_s: float
    rate: float

    @property
    def total_s(self) -> float:
        return self.main_s + self.workers_s + self.sampler_s


def run_once(wrapper: Path, script: Path, options: tuple[str, ...] | None, tmp: Path,
             checkout: str | None = None) -> Run:
    """One run: plain (``options`` None) or profiled with ``options``; ``checkout`` is the
    folder whose plumber profiles it (None: the one installed)."""
    env = {"PYTHONPATH": checkout} if checkout is not None else None
    rate, used = run_wrapped(wrapper, script, tmp / "cpu.json", options is not None,
                             tmp / "out", env, options or ())
    return Run(used["main"], used["workers"], used["sampler"], rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", nargs="*", default=list(DEFAULT))
    parser.add_argument("--hotspots", action="store_true",
                        help="also profile with --hotspots, py-spy's CPU counted")
    parser.add_argument("--also", metavar="DIR", default=None,
                        help="also profile with the plumber checked out in DIR")
    args = parser.parse_args()
    print(f"| workload | run | main CPU s | workers CPU s | sampler CPU s | workers / plain "
          f"| all CPU / plain | elem/s | elem/s / plain | (medians of {args.repeats}, "
          f"interleaved) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wrapper = tmp / "loader_cpu_of.py"
        wrapper.write_text(WRAPPER)
        for name in args.workloads:
            script = WORKLOADS / f"{name}.py"
            configs: dict[str, tuple[tuple[str, ...] | None, str | None]] = {
                "plain": (None, None), "profiled": ((), None)}
            if args.hotspots:
                configs["--hotspots"] = (("--hotspots",), None)
            if args.also is not None:
                configs[f"profiled ({Path(args.also).name})"] = ((), args.also)
            runs: dict[str, list[Run]] = {label: [] for label in configs}
            for repeat in range(args.repeats):
                print(f"{name}: repeat {repeat + 1}/{args.repeats}", file=sys.stderr)
                for label, (options, checkout) in configs.items():
                    runs[label].append(run_once(wrapper, script, options, tmp, checkout))
            plain = runs["plain"]
            plain_workers = statistics.median(r.workers_s for r in plain)
            plain_total = statistics.median(r.total_s for r in plain)
            plain_rate = statistics.median(r.rate for r in plain)
            for label, rows in runs.items():
                workers_s = statistics.median(r.workers_s for r in rows)
                total_s = statistics.median(r.total_s for r in rows)
                rate = statistics.median(r.rate for r in rows)
                print(f"| {name} | {label} | {statistics.median(r.main_s for r in rows):.2f} "
                      f"| {workers_s:.2f} | {statistics.median(r.sampler_s for r in rows):.2f} "
                      f"| {workers_s / plain_workers:.3f} | {total_s / plain_total:.3f} "
                      f"| {rate:,.0f} | {rate / plain_rate:.3f} | |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
