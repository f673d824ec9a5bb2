"""Secrets given to a profiled script reach the script and no artefact of ``plumber profile``."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.slow

#: Prints what it was given, then fails with a message quoting its token and a signed URL.
SCRIPT = """
import sys
print("ARGS", sys.argv[1:])
raise ValueError(f"token {sys.argv[1].split('=')[1]} refused by "
                 f"https://bucket.example.com/k?X-Amz-Signature=SIGSECRET")
"""

ARGS = ("--token=SECRET1", "--api-key", "SECRET2", "--data", "https://user:SECRET3@host/d",
        "--epochs", "2")


def test_profile_keeps_secret_arguments_out_of_profile_and_report(plumber_cli, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    run = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", script, "--", *ARGS)
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"ARGS {list(ARGS)}" in run.stdout
    for artefact in (run.profile_path, run.report_path):
        text = artefact.read_text()
        assert "SECRET" not in text, artefact
        assert "REDACTED" in text and "--epochs" in text
    kept = plumber_cli("profile", "-o", "out", "--cpu-probe", "0", "--keep-secrets", script,
                       "--", *ARGS)
    assert kept.returncode == 1, kept.stderr[-3000:]
    assert "SECRET2" in kept.profile_path.read_text()
