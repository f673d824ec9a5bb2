"""Fixtures of the browser tests: one headless Chromium per session, a tab per test.

Chromium comes from Debian's package (installed here when missing, see
``chromium_setup``); it is driven over the DevTools protocol on a pipe
(``chromium_cdp``). Screenshots go to one session directory under pytest's
temporary directory, named after the case, so they can be looked at after
a run. A real profile is made once per session by running the real CLI.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_cdp import SCREEN, Chromium, Page
from chromium_setup import ChromiumUnavailable, find_or_install_chromium

REPO = Path(__file__).resolve().parents[2]
REAL_PIPELINE = REPO / "tests" / "integration" / "pipelines" / "expensive_map.py"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Chromium's executable; a missing one that cannot be installed fails every browser test."""
    try:
        return find_or_install_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(f"The report's browser tests need Chromium. {exc}", pytrace=False)


@pytest.fixture(scope="session")
def browser(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless browser for the whole session, with a throw-away profile."""
    with Chromium(chromium_path, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


@pytest.fixture
def page(browser: Chromium) -> Iterator[Page]:
    """A fresh tab at 1280 x 800, offline, recording requests, errors and dialogs."""
    tab = browser.new_page(*SCREEN)
    yield tab
    tab.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's screenshots are saved."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of ``plumber profile`` on the expensive-map pipeline, run once per session.

    It runs outside the repository, so the profile records absolute paths,
    as it does for most users' scripts. 400 elements, as the CI gate runs it
    (.ci/gate-baselines/expensive_map.json records map-0's parallelism as the
    bottleneck there), a third of the script's default run.
    """
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed; the real profile needs it")
    work = tmp_path_factory.mktemp("real-profile")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PLUMBER_CACHE_DIR": str(work / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "plumber", "profile", "-o", str(work / "out"), str(REAL_PIPELINE),
         "--", "--elements", "400"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, f"plumber profile failed ({run.returncode}):\n{run.stderr[-3000:]}"
    return work / "out" / "report.html"
