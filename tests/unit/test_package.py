"""``import plumber`` stays light and works without TensorFlow or PyTorch."""

import subprocess
import sys
import textwrap


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_core_analysis_and_reports_import_with_frameworks_unavailable():
    result = run_python("""
        import sys
        sys.modules["tensorflow"] = None  # makes "import tensorflow" fail
        sys.modules["torch"] = None
        import plumber, plumber.cli, plumber.reports.outputs, plumber.capture.session
        import plumber.analyzers.diagnose, plumber.reports.html
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_plumber_loads_no_framework():
    result = run_python("""
        import sys
        import plumber, plumber.cli
        heavy = [m for m in ("tensorflow", "torch", "keras", "pandas") if m in sys.modules]
        print(heavy)
    """)
    assert result.stdout.strip() == "[]", result.stderr


def test_cli_help_lists_the_subcommands():
    result = subprocess.run(
        [sys.executable, "-m", "plumber", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "profile" in result.stdout and "report" in result.stdout


def test_cli_without_a_subcommand_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "plumber"], capture_output=True, text=True)
    assert result.returncode == 2
