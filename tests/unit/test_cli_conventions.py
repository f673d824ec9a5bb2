"""The command line's conventions: plumber's options anywhere before ``--``, the script's after.

Parsing only: every command's ``run`` is replaced by a recorder, so no
framework or script is run. The README's commands are parsed as written.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from plumber.cli import COMMANDS, UsageError, main, parse_command_line
from plumber.records import exitcodes

README = Path(__file__).resolve().parents[2] / "README.md"

#: Values for the synopsis's placeholders that need a number.
PLACEHOLDER_VALUES = {"N": "3", "S": "1.5", "P": "5050", "HZ": "50", "RATE": "10Gb/s"}


@pytest.fixture
def handled(monkeypatch) -> list:
    """The namespaces the commands were run with (none run for real); each exits 0."""
    calls: list = []
    for command in COMMANDS:
        monkeypatch.setattr(type(command), "run", lambda self, args: calls.append(args) or 0)
    return calls


def readme_commands() -> list[str]:
    """Every ``plumber`` command line in the README's code blocks, continuations joined."""
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                if not part.strip().startswith(("plumber ", "python -m plumber ")):
                    continue
                words = shlex.split(part, comments=True)
                start = 1 if words[0] == "plumber" else 3
                end = words.index("|") if "|" in words else len(words)
                commands.append(shlex.join(words[start:end]))
    return commands


def synopsis_as_command(line: str) -> list[str]:
    """A synopsis line with every optional part given: ``[-o DIR]`` -> ``-o DIR``."""
    words = line.replace("[", " ").replace("]", " ").replace("...", " ").split()
    return [PLACEHOLDER_VALUES.get(word, word) for word in words]


def after_separator(words: list[str]) -> list[str]:
    return words[words.index("--") + 1:] if "--" in words else []


def test_the_readme_has_its_commands_found():
    commands = readme_commands()
    assert len(commands) >= 10
    assert "tune benchmarks/torch/expensive_transform.py -o plan.json" in commands
    assert {c.split()[0] for c in commands} == {
        "profile", "report", "tune", "run", "gate", "service"}


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses_as_written(command, handled):
    words = shlex.split(command)
    if any("[" in word for word in words):
        words = synopsis_as_command(" ".join(words))
    assert main(words) == exitcodes.OK
    (args,) = handled
    assert args.command == words[0]
    if hasattr(args, "script_args"):
        assert args.script_args == after_separator(words)


def test_the_readme_tune_then_run_pair_uses_one_plan_file(handled):
    main(["tune", "benchmarks/torch/expensive_transform.py", "-o", "plan.json"])
    main(["run", "--plan", "plan.json", "benchmarks/torch/expensive_transform.py"])
    tuned, ran = handled
    assert tuned.output == ran.plan == Path("plan.json")
    assert tuned.script_args == ran.script_args == []


@pytest.mark.parametrize("argv", [
    ["tune", "-o", "p.json", "--rounds", "2", "train.py"],
    ["tune", "train.py", "-o", "p.json", "--rounds", "2"],
    ["tune", "-o", "p.json", "train.py", "--rounds=2"],
])
def test_plumbers_options_are_taken_before_or_after_the_script(argv):
    args = parse_command_line(argv)
    assert (args.script, args.output, args.rounds, args.script_args) == (
        Path("train.py"), Path("p.json"), 2, [])


def test_everything_after_the_separator_goes_to_the_script_unchanged():
    args = parse_command_line(
        ["profile", "train.py", "--steps", "5", "--", "-o", "x", "--steps", "9", "--", "data"])
    assert args.steps == 5 and args.output is None
    assert args.script_args == ["-o", "x", "--steps", "9", "--", "data"]


@pytest.mark.parametrize(("argv", "unrecognized"), [
    (["tune", "train.py", "--epochs", "3"], "--epochs 3"),
    (["profile", "train.py", "-o", "out", "data.csv"], "data.csv"),
    (["run", "--plan", "p.json", "train.py", "more", "--", "--x"], "more"),
    (["gate", "--baseline", "b.json", "train.py", "--dur", "3"], "--dur 3"),
])
def test_an_argument_plumber_does_not_take_before_the_separator_is_a_one_line_usage_error(
        capsys, handled, argv, unrecognized):
    assert main(argv) == exitcodes.USAGE
    assert handled == []
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"plumber {argv[0]}: error: unrecognized arguments: {unrecognized};")
    assert "put the script's own arguments after --" in line
    assert line.endswith(shlex.join([*shlex.split(unrecognized), *after_separator(argv)]))


def test_an_option_is_never_taken_by_its_prefix():
    with pytest.raises(UsageError, match="unrecognized arguments: --out x"):
        parse_command_line(["profile", "train.py", "--out", "x"])


def test_report_takes_nothing_after_the_separator(capsys, handled):
    assert main(["report", "p.json", "--", "x"]) == exitcodes.USAGE
    assert handled == []
    assert capsys.readouterr().err.strip() == (
        "plumber report: error: unrecognized arguments: -- x")


def test_keep_secrets_is_off_unless_asked_for():
    assert parse_command_line(["profile", "train.py"]).keep_secrets is False
    assert parse_command_line(["tune", "train.py", "--keep-secrets"]).keep_secrets is True


def test_a_hotspots_rate_is_a_whole_number_from_1_to_1000(capsys, handled):
    args = parse_command_line(["tune", "train.py", "--hotspots-rate", "100"])
    assert (args.hotspots, args.hotspots_rate) == (False, 100)  # the run implies --hotspots
    assert parse_command_line(["profile", "train.py", "--hotspots"]).hotspots_rate is None
    for bad in ("0", "2.5", "1001", "fast"):
        with pytest.raises(SystemExit) as exited:
            main(["profile", "train.py", "--hotspots-rate", bad])
        assert exited.value.code == exitcodes.USAGE
        assert "error: argument --hotspots-rate:" in capsys.readouterr().err
    assert handled == []


def test_a_link_bandwidth_is_a_rate_in_bits_or_bytes_per_second(capsys, handled):
    assert parse_command_line(["profile", "train.py"]).link_bandwidth is None
    for given, bps in (("10Gb/s", 1.25e9), ("100 Mbit/s", 12.5e6), ("1.25GB/s", 1.25e9),
                       ("800kB/s", 8e5)):
        assert parse_command_line(["tune", "train.py", "--link-bandwidth", given]
                                  ).link_bandwidth == pytest.approx(bps)
    for bad in ("10", "0Gb/s", "fast", "10 Gbps", "-1Gb/s"):
        with pytest.raises(SystemExit) as exited:
            main(["profile", "train.py", "--link-bandwidth", bad])
        assert exited.value.code == exitcodes.USAGE
        assert "error: argument --link-bandwidth:" in capsys.readouterr().err
    assert handled == []


def test_python_m_plumber_refuses_a_misplaced_script_option_before_running_anything(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("open('ran', 'w').close()\n")
    proc = subprocess.run(
        [sys.executable, "-m", "plumber", "tune", str(script), "-o", "p.json", "--epochs", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == exitcodes.USAGE
    assert len(proc.stderr.strip().splitlines()) == 1 and "after --" in proc.stderr
    assert not (tmp_path / "ran").exists()
