"""Benchmark: a plan's measured rate in a fresh process against a rerun in tune's process.

``plumber tune`` measures the script as written and with its plan, round
after round. It used to run each measuring run in its own process, after
the profiling run and the runs before it; it now starts each in a fresh
process (plumber/tuner/freshrun.py), as the user starts the script. This
runs one script, interleaved, three ways, and prints each run's steady rate
(root elements per second after each iterator's first step, the window the
model predicts) with the medians:

- ``fresh, as written`` and ``fresh, plan``: a measuring run as tune makes
  it now;
- ``rerun, plan``: a process that profiles the script as written, then with
  the plan, as tune did before; the second run's rate.

The default script is the PyTorch data tutorial's loader
(tests/realworld/torch_data_tutorial.py) with the plan ``tune`` writes for it:
cache the samples after ``Rescale``, persistent workers. ``--plan`` gives a
plan of your own (``tune`` writes one first when none is given).

    python benchmarks/measuring_runs.py [--repeats 5] [--plan PLAN.json]
                                        [SCRIPT -- ARGS]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from plumber.analyzers.observed import steady_rate
from plumber.capture.session import SessionOptions
from plumber.records.plan import Plan
from plumber.tuner.freshrun import fresh_profile

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tests" / "realworld" / "torch_data_tutorial.py"

#: Run in a child: profile the script as written, then with the plan, in this one process
#: (``tune --reuse-process``'s measuring runs).
RERUN = '''
import json, sys
from pathlib import Path
from plumber.analyzers.observed import steady_rate
from plumber.capture.session import SessionOptions
from plumber.records.plan import Plan
from plumber.tuner.verify import measured_profile
script, plan = Path(sys.argv[1]), Plan.load(sys.argv[2])
args = sys.argv[3:]
options = SessionOptions(net_probe_s=0.0)
measured_profile(script, args, options, reuse_process=True)
profile = measured_profile(script, args, options, plan, reuse_process=True)
print("RATE", json.dumps([steady_rate(p) for p in profile.pipelines]))
'''


def fresh(script: Path, args: list[str], plan: Plan | None) -> float | None:
    profile = fresh_profile(script, args, SessionOptions(net_probe_s=0.0), plan)
    return steady_rate(profile.pipelines[0]) if profile.pipelines else None


def rerun(script: Path, args: list[str], plan_file: Path) -> float | None:
    done = subprocess.run([sys.executable, "-c", RERUN, str(script), str(plan_file), *args],
                          capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RATE "))
    rates = json.loads(line.removeprefix("RATE "))
    return rates[0] if rates else None


def tuned_plan(script: Path, args: list[str], folder: Path) -> Path:
    """The plan ``plumber tune --rounds 1`` writes for the script."""
    plan = folder / "plan.json"
    subprocess.run([sys.executable, "-m", "plumber", "tune", "-o", str(plan), "--rounds", "1",
                    str(script), "--", *args], check=True, capture_output=True)
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plan", type=Path, default=None)
    parser.add_argument("script", nargs="?", type=Path, default=TUTORIAL)
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    args = options.args or (["--epochs", "6"] if options.script == TUTORIAL else [])
    with tempfile.TemporaryDirectory(prefix="plumber-bench-") as work:
        if options.script == TUTORIAL and not options.args:
            args += ["--data-dir", str(Path(work) / "data")]
        plan_file = options.plan or tuned_plan(options.script, args, Path(work))
        plan = Plan.load(plan_file)
        runs: dict[str, list[float]] = {"fresh, as written": [], "fresh, plan": [],
                                        "rerun, plan": []}
        for repeat in range(options.repeats):
            for name, measure in (
                ("fresh, as written", lambda: fresh(options.script, args, None)),
                ("fresh, plan", lambda: fresh(options.script, args, plan)),
                ("rerun, plan", lambda: rerun(options.script, args, plan_file)),
            ):
                rate = measure()
                if rate is not None:
                    runs[name].append(rate)
                print(f"repeat {repeat + 1}: {name}: {rate}", file=sys.stderr, flush=True)
    print(f"{options.script.name}, steady rates (elements/s), medians of {options.repeats}, "
          f"interleaved")
    print("| run | median | ratio to fresh, as written | runs |")
    print("|---|---|---|---|")
    base = statistics.median(runs["fresh, as written"])
    for name, rates in runs.items():
        median = statistics.median(rates)
        listed = ", ".join(f"{r:.1f}" for r in rates)
        print(f"| {name} | {median:.1f} | {median / base:.2f} | {listed} |")


if __name__ == "__main__":
    main()
