"""The notebook API's surface without a framework: lazy loading, argument checks, the magic."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import plumber


def test_profile_and_result_load_lazily_without_pandas_matplotlib_or_frameworks():
    code = textwrap.dedent("""
        import sys
        import plumber
        assert "plumber.notebook" not in sys.modules
        plumber.profile, plumber.ProfileResult
        from plumber import profile
        heavy = ("tensorflow", "torch", "pandas", "matplotlib", "IPython")
        print([m for m in heavy if m in sys.modules])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        plumber.no_such_thing  # noqa: B018


class DataLoader:
    """Stands in for torch.utils.data.DataLoader without importing torch."""


DataLoader.__module__ = "torch.utils.data.dataloader"


def test_a_torch_dataloader_is_refused_naming_what_is_supported():
    with pytest.raises(TypeError, match="DataLoader") as info:
        plumber.profile(DataLoader())
    assert "tf.data.Dataset" in str(info.value)


@pytest.mark.parametrize("value", [[1, 2, 3], "dataset.tfrecord", 42])
def test_anything_else_is_refused_naming_what_is_supported(value):
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        plumber.profile(value)


@pytest.mark.parametrize(
    "kwargs",
    [{"steps": 0}, {"steps": 2.5}, {"steps": True}, {"duration": 0}, {"duration": -1.0},
     {"cpu_probe": -1}, {"hotspots": 0}, {"hotspots": 2.5}, {"hotspots": 1001},
     {"hotspots": "yes"}, {"link_bandwidth": "fast"}, {"link_bandwidth": "0Gb/s"}],
)
def test_bad_bounds_are_refused_before_anything_runs(kwargs):
    def build():
        raise AssertionError("must not be called")

    with pytest.raises(ValueError):
        plumber.profile(build, **kwargs)


def test_a_link_bandwidth_without_its_unit_is_refused():
    def build():
        raise AssertionError("must not be called")

    with pytest.raises(TypeError, match="10Gb/s"):
        plumber.profile(build, link_bandwidth=1e10)


class RecordingShell:
    """The one method of an IPython shell that ``load_ipython_extension`` calls."""

    def __init__(self) -> None:
        self.registered: list[type] = []

    def register_magics(self, magics: type) -> None:
        self.registered.append(magics)


def test_load_ext_registers_the_plumber_cell_magic():
    pytest.importorskip("IPython")
    shell = RecordingShell()
    plumber.load_ipython_extension(shell)
    (magics,) = shell.registered
    assert "plumber" in magics.magics["cell"]


def test_magic_refuses_bad_options_before_running_the_cell():
    pytest.importorskip("IPython")
    from plumber.notebook.magic import PlumberMagics

    magics = PlumberMagics(shell=None)
    for line, option in (("--steps 0", "--steps"), ("--duration -1", "--duration"),
                         ("--cpu-probe -1", "--cpu-probe"),
                         ("--link-bandwidth fast", "--link-bandwidth")):
        with pytest.raises(ValueError, match=option):
            magics.plumber(line, "raise AssertionError('the cell ran')")
