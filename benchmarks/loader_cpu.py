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
gives the medians and the workers' CPU against plain's. ``--also DIR``
adds, interleaved with them, runs profiled by the plumber checked out in DIR
(another commit, side by side: ``git worktree add DIR COMMIT``).

    python benchmarks/loader_cpu.py [--repeats 5] [--workloads torch_long_epochs ...]
                                    [--also DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

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
iterate = DataLoader.__iter__
def first_iter(loader):
    if not start:
        start.append((cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)))
    return iterate(loader)
DataLoader.__iter__ = first_iter
runpy.run_path(script, run_name="__main__")
main, workers = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
with open(report, "w") as out:
    json.dump({"main": main - start[0][0], "workers": workers - start[0][1]}, out)
'''


def run_once(wrapper: Path, script: Path, profiled: bool, tmp: Path,
             checkout: str | None = None) -> tuple[float, float, float]:
    """(main process CPU s, workers' CPU s, throughput) of one run; ``checkout`` is the
    folder whose plumber profiles it (None: the one installed)."""
    env = {"PYTHONPATH": checkout} if checkout is not None else None
    rate, used = run_wrapped(wrapper, script, tmp / "cpu.json", profiled, tmp / "out", env)
    return used["main"], used["workers"], rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", nargs="*", default=list(DEFAULT))
    parser.add_argument("--also", metavar="DIR", default=None,
                        help="also profile with the plumber checked out in DIR")
    args = parser.parse_args()
    print(f"{'workload':<20} {'run':<16} {'main CPU s':>10} {'workers CPU s':>13} "
          f"{'elem/s':>8} {'workers vs plain':>16}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wrapper = tmp / "loader_cpu_of.py"
        wrapper.write_text(WRAPPER)
        for name in args.workloads:
            script = WORKLOADS / f"{name}.py"
            configs = {"plain": (False, None), "profiled": (True, None)}
            if args.also is not None:
                configs[f"profiled ({Path(args.also).name})"] = (True, args.also)
            runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label in configs}
            for _ in range(args.repeats):
                for label, (profiled, checkout) in configs.items():
                    runs[label].append(run_once(wrapper, script, profiled, tmp, checkout))
            plain_workers = statistics.median(r[1] for r in runs["plain"])
            for label, rows in runs.items():
                main_s = statistics.median(r[0] for r in rows)
                workers_s = statistics.median(r[1] for r in rows)
                rate = statistics.median(r[2] for r in rows)
                print(f"{name:<20} {label:<16} {main_s:>10.2f} {workers_s:>13.2f} {rate:>8,.0f} "
                      f"{workers_s / plain_workers:>16.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
