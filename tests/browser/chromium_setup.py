"""Find Chromium for the browser tests, installing Debian's package when it is missing.

CI must exercise the report in a real browser, so a missing browser is an
error with a clear message, never a skip. As root (CI containers) the
tests install it themselves with apt-get; anyone else is told the command.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

#: The apt-get steps, each with the seconds it may take (the package and
#: its libraries are a few hundred MB on a fresh machine).
APT_STEPS = (
    (("apt-get", "update"), 300),
    (("apt-get", "install", "-y", "--no-install-recommends", "chromium"), 900),
)


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed and could not be installed; the message says what to do."""


def find_or_install_chromium() -> str:
    """The path of ``chromium``, after installing it with apt-get if needed (root only)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            "`chromium` is not on PATH and the tests are not running as root, so they cannot "
            "install it. Install it with: sudo apt-get install -y --no-install-recommends chromium"
        )
    if shutil.which("apt-get") is None:
        raise ChromiumUnavailable(
            "`chromium` is not on PATH and there is no apt-get to install Debian's package; "
            "install Chromium so that `chromium` is on PATH"
        )
    for args, timeout in APT_STEPS:
        _run(args, timeout)
    found = shutil.which("chromium")
    if not found:
        raise ChromiumUnavailable("apt-get installed chromium, but `chromium` is not on PATH")
    return found


def _run(args: tuple[str, ...], timeout: float) -> None:
    """Run one apt-get step; raise ChromiumUnavailable with its output if it fails."""
    command = shlex.join(args)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChromiumUnavailable(f"`{command}` did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise ChromiumUnavailable(f"`{command}` could not be run: {exc}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise ChromiumUnavailable(
            f"`{command}` failed with exit status {done.returncode}:\n{output}"
        )
