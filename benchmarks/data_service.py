"""Benchmark: the offload model's prediction against tf.data service runs on this machine.

The training process is pinned to core 0 (``taskset``), so the CPU-heavy
map of ``workloads/service_map.py`` is all it can run; a local tf.data
service pinned to the other cores takes the map over. Steps:

1. ``plumber profile`` the workload pinned to core 0, and read the offload
   the analysis chooses (``plumber.analyzers.offload``): the cut, the CPU
   per batch that moves and what stays; ``plumber service plan`` writes it
   into a plan.
2. Run, interleaved ``--repeats`` times: as written (pinned), and with the
   cut on a service of 1 and of 2 workers (``plumber run --data-service``),
   the service pinned to the cores left.
3. Print measured medians against the prediction. The workers here share
   the cores left (one on a 2-core machine), so the prediction for N local
   workers is the model's rate for as many workers as there are cores left,
   not N; the model's figure for N workers on N hosts of this machine's
   size is printed beside it.

On real hosts, run ``plumber service start --dispatcher ... --workers 1`` on
each worker host instead and pass ``--service grpc://HOST:PORT --hosts N``
(see docs/data-service.md); step 3 then compares with the model's rate for
N workers on hosts of this machine's size.

    python benchmarks/data_service.py [--repeats 3] [--elements 3000]
                                      [--service grpc://HOST:PORT --hosts N]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from plumber.analyzers.diagnose import scene
from plumber.analyzers.offload import Offload, offload
from plumber.records.profile import Profile
from plumber.records.units import rate

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workloads" / "service_map.py"
THROUGHPUT = re.compile(r"^THROUGHPUT ([0-9.]+)$", re.MULTILINE)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
TRAINER_CORE = "0"


def pinned(cores: str, *command: str) -> list[str]:
    return ["taskset", "-c", cores, *command]


def plumber(cores: str, *args: str, work: Path) -> subprocess.CompletedProcess:
    return subprocess.run(pinned(cores, sys.executable, "-m", "plumber", *args), cwd=work,
                          capture_output=True, text=True, env=ENV, check=False)


def chosen_offload(work: Path, elements: int) -> tuple[Offload, float, Path]:
    """Profile the workload on the trainer's core: the analysis's offload, the model's rate
    as written, and the plan."""
    profiled = plumber(TRAINER_CORE, "profile", str(WORKLOAD), "-o", "profile",
                       "--", str(elements), work=work)
    profile_path = work / "profile" / "profile.json"
    if not profile_path.exists():
        raise SystemExit(f"profiling failed:\n{profiled.stderr[-2000:]}")
    profile = Profile.load(profile_path)
    as_run = scene(profile, profile.pipelines[0])
    chosen = offload(as_run)
    if chosen is None:
        raise SystemExit("the analysis proposes no offload (the trainer's core was not kept "
                         "busy: is the machine loaded?)")
    plan = work / "plan.json"
    planned = plumber(TRAINER_CORE, "service", "plan", str(profile_path), str(WORKLOAD),
                      "--plan", str(plan), work=work)
    if planned.returncode != 0:
        raise SystemExit(planned.stderr)
    return chosen, as_run.predicted_rate, plan


class LocalService:
    """``plumber service start`` pinned to ``cores``, stopped on exit."""

    def __init__(self, workers: int, cores: str, work: Path) -> None:
        self.process = subprocess.Popen(
            pinned(cores, sys.executable, "-m", "plumber", "service", "start",
                   "--workers", str(workers)),
            cwd=work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.address = self.process.stdout.readline().strip()

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def measure(work: Path, elements: int, plan: Path | None = None,
            service: str | None = None) -> float:
    if plan is None:
        command = pinned(TRAINER_CORE, sys.executable, str(WORKLOAD), str(elements))
        proc = subprocess.run(command, cwd=work, capture_output=True, text=True, env=ENV)
    else:
        proc = plumber(TRAINER_CORE, "run", "--plan", str(plan), "--data-service", str(service),
                       str(WORKLOAD), "--", str(elements), work=work)
    match = THROUGHPUT.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise SystemExit(f"run failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--elements", type=int, default=3000)
    parser.add_argument("--service", default=None,
                        help="a running service (grpc://HOST:PORT) instead of local ones")
    parser.add_argument("--hosts", type=int, default=None,
                        help="with --service: its workers, one per host the size of this one")
    args = parser.parse_args()
    if (args.service is None) != (args.hosts is None) or (
            args.hosts is not None and args.hosts < 1):
        parser.error("--service and --hosts N (1 or more) go together")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 and args.service is None:
        raise SystemExit("needs 2 cores: one for the trainer, the rest for the workers")
    left = ",".join(str(c) for c in cores if str(c) != TRAINER_CORE)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        chosen, as_written, plan = chosen_offload(work, args.elements)
        batch = 16  # elements per root element (the workload's batch)
        print(f"cut after {chosen.cut.id}; CPU per batch moved {chosen.remote_cpu_s * 1e3:.1f} "
              f"ms, left here {chosen.local_cpu_s * 1e3:.2f} ms")
        # (name, workers, the cores they share: None when each has a host of its own)
        configs = ([(f"service, {n} local worker(s)", n, len(left.split(","))) for n in (1, 2)]
                   if args.service is None else
                   [(f"service, {args.hosts} host(s)", args.hosts, None)])
        runs: dict[str, list[float]] = {"as written": []}
        for _ in range(args.repeats):
            runs["as written"].append(measure(work, args.elements))
            for name, workers, _shared in configs:
                if args.service is None:
                    with LocalService(workers, left, work) as local:
                        runs.setdefault(name, []).append(
                            measure(work, args.elements, plan, local.address))
                else:
                    runs.setdefault(name, []).append(
                        measure(work, args.elements, plan, args.service))
        print(f"{'configuration':<28} {'measured':>12} {'predicted':>12} {'on N hosts':>12}")
        print(f"{'as written':<28} {rate(statistics.median(runs['as written']) / batch):>12} "
              f"{rate(as_written):>12} {rate(math.nan):>12}")
        for name, workers, shared in configs:
            measured = statistics.median(runs[name]) / batch
            hosts = chosen.rates[min(workers, len(chosen.rates)) - 1]
            predicted = (hosts if shared is None else
                         chosen.rates[min(workers, shared, len(chosen.rates)) - 1])
            print(f"{name:<28} {rate(measured):>12} {rate(predicted):>12} {rate(hosts):>12}")
        print("rates in batches/s (medians); predicted: local workers share the cores left here, "
              "remote ones each have a host")


if __name__ == "__main__":
    main()
