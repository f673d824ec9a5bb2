"""Installing Chromium for the browser tests: the path CI takes on a fresh machine.

The browser is present where these tests are written, so the install path
is checked here with apt-get and the PATH lookup replaced by fakes.
"""

from __future__ import annotations

import subprocess

import chromium_setup
import pytest
from chromium_setup import ChromiumUnavailable, find_or_install_chromium


class FakeSystem:
    """``shutil.which``, ``os.geteuid`` and ``subprocess.run`` of a machine without Chromium."""

    def __init__(self, root: bool = True, fails: str = "", has_apt: bool = True) -> None:
        self.root = root
        self.fails = fails
        self.has_apt = has_apt
        self.installed = False
        self.commands: list[tuple[str, ...]] = []

    def which(self, name: str) -> str | None:
        if name == "chromium":
            return "/usr/bin/chromium" if self.installed else None
        return "/usr/bin/apt-get" if name == "apt-get" and self.has_apt else None

    def run(self, args: tuple[str, ...], **kw: object) -> subprocess.CompletedProcess[str]:
        self.commands.append(tuple(args))
        assert kw["timeout"] and kw["env"]["DEBIAN_FRONTEND"] == "noninteractive"  # type: ignore[index]
        if self.fails == "timeout":
            raise subprocess.TimeoutExpired(args, kw["timeout"])  # type: ignore[arg-type]
        if self.fails and self.fails in args:
            return subprocess.CompletedProcess(args, 100, "", "E: Unable to locate package")
        if "install" in args:
            self.installed = True
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> FakeSystem:
    fake = FakeSystem()
    monkeypatch.setattr(chromium_setup.shutil, "which", fake.which)
    monkeypatch.setattr(chromium_setup.subprocess, "run", fake.run)
    monkeypatch.setattr(chromium_setup.os, "geteuid", lambda: 0 if fake.root else 1000)
    return fake


def test_root_installs_debians_chromium_and_returns_its_path(system: FakeSystem) -> None:
    assert find_or_install_chromium() == "/usr/bin/chromium"
    assert system.commands == [
        ("apt-get", "update"),
        ("apt-get", "install", "-y", "--no-install-recommends", "chromium"),
    ]


def test_an_installed_chromium_is_used_as_it_is(system: FakeSystem) -> None:
    system.installed = True
    assert find_or_install_chromium() == "/usr/bin/chromium"
    assert system.commands == []


def test_without_root_it_says_how_to_install_and_runs_nothing(system: FakeSystem) -> None:
    system.root = False
    with pytest.raises(ChromiumUnavailable, match="apt-get install -y --no-install-recommends"):
        find_or_install_chromium()
    assert system.commands == []


def test_without_apt_get_it_says_so(system: FakeSystem) -> None:
    system.has_apt = False
    with pytest.raises(ChromiumUnavailable, match="no apt-get"):
        find_or_install_chromium()


def test_a_failed_install_reports_the_command_and_its_output(system: FakeSystem) -> None:
    system.fails = "install"
    with pytest.raises(ChromiumUnavailable, match="exit status 100:\nE: Unable to locate package"):
        find_or_install_chromium()


def test_a_hung_apt_get_is_stopped_by_its_timeout(system: FakeSystem) -> None:
    system.fails = "timeout"
    with pytest.raises(ChromiumUnavailable, match="`apt-get update` did not finish within 300 s"):
        find_or_install_chromium()
