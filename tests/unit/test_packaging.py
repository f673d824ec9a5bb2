"""pyproject.toml installs every package and template of the source tree.

``[tool.setuptools] packages`` is an explicit list, so a new package folder
that is not added to it works in an editable install (and in every test run
from the checkout) but is missing from a wheel: ``plumber.commands`` was, and
the installed ``plumber`` command failed on import. These tests read the
tree and the list, so they fail in the checkout the moment the two differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import pytest

    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["tool"]["setuptools"]


def _source_folder(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools takes ``package`` from: its nearest mapped parent, then the path."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        mapped = package_dir.get(".".join(parts[:cut]))
        if mapped is not None:
            return ROOT / mapped / Path(*parts[cut:])
    return ROOT / Path(*parts)


def _tree_packages(package_dir: dict[str, str]) -> dict[str, Path]:
    """Every package in the source trees: a folder with an ``__init__.py``, by dotted name."""
    found = {}
    for top in ("plumber", "plumber.analyzers", "plumber.reports"):
        folder = _source_folder(top, package_dir)
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            name = ".".join((top, *relative))
            # A nested mapped package (analyzers/ under plumber) is found from its own top.
            if _source_folder(name, package_dir) == init.parent:
                found[name] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject():
    setuptools = _setuptools()
    assert sorted(setuptools["packages"]) == sorted(_tree_packages(setuptools["package-dir"]))


def test_every_listed_package_has_its_source_folder():
    setuptools = _setuptools()
    for package in setuptools["packages"]:
        folder = _source_folder(package, setuptools["package-dir"])
        assert (folder / "__init__.py").is_file(), package


def test_every_folder_holding_modules_is_a_package():
    setuptools = _setuptools()
    packaged = set(_tree_packages(setuptools["package-dir"]).values())
    for top in ("plumber", "plumber.analyzers", "plumber.reports"):
        folder = _source_folder(top, setuptools["package-dir"])
        holding = {path.parent for path in folder.rglob("*.py") if "__pycache__" not in path.parts}
        assert holding <= packaged, sorted(map(str, holding - packaged))


def test_package_data_covers_every_report_template():
    setuptools = _setuptools()
    folder = _source_folder("plumber.reports", setuptools["package-dir"])
    templates = {path for path in (folder / "templates").rglob("*") if path.is_file()}
    covered = {path for pattern in setuptools["package-data"]["plumber.reports"]
               for path in folder.glob(pattern)}
    assert templates
    assert sorted(map(str, templates - covered)) == []


def test_test_files_have_unique_names():
    """The test folders are not packages, so two test files of one name stop the whole suite."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
