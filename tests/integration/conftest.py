"""Run the real ``plumber`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PIPELINES = Path(__file__).parent / "pipelines"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    out_dir: Path

    @property
    def profile_path(self) -> Path:
        return self.out_dir / "profile.json"

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.html"


def run_plumber(args: list[str], cwd: Path, timeout: float = 300, **popen) -> CliRun:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env["PLUMBER_CACHE_DIR"] = str(cwd / "cache")
    proc = subprocess.run(
        [sys.executable, "-m", "plumber", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **popen,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr, cwd / "out")


@pytest.fixture
def plumber_cli(tmp_path):
    """Call as ``plumber_cli("profile", script, "-o", "out", ...)``, run in tmp_path."""

    def call(*args: str, timeout: float = 300) -> CliRun:
        return run_plumber([str(a) for a in args], cwd=tmp_path, timeout=timeout)

    return call


@pytest.fixture(scope="session", autouse=True)
def _tensorflow_available():
    pytest.importorskip("tensorflow")
