"""Imports go down the layers only (docs/architecture.md), checked on the source with ast.

Every ``import`` and ``from ... import`` of a plumber module counts, also
inside functions and under ``TYPE_CHECKING``: a lazy import still ties the
layers together. Whether ``import plumber`` stays light is checked in a
fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Where each installed package's source lies in the repository.
SOURCES = {"plumber.analyzers": ROOT / "analyzers", "plumber.reports": ROOT / "reports",
           "plumber": ROOT / "plumber"}

#: The layers, bottom first: a module may import its own layer and those below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("records", ("plumber.records",)),
    ("measure", ("plumber.measure",)),
    ("caching", ("plumber.caching",)),
    ("adapters", ("plumber.tf", "plumber.torch")),
    ("capture", ("plumber.capture",)),
    ("analysis", ("plumber.analyzers",)),
    ("tuning", ("plumber.tuner",)),
    ("reports", ("plumber.reports",)),
    ("front", ("plumber.cli", "plumber.commands", "plumber.notebook", "plumber.gate",
               "plumber.objectcache", "plumber.__main__", "plumber")),
)

#: Layers that may import only the listed ones besides their own: the analysis
#: is pure (records in, results out) and renderers read records and results.
ONLY = {"analysis": {"records"}, "reports": {"records", "analysis"}}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> str:
    """The layer a plumber module belongs to (the most specific package wins)."""
    best, depth = None, -1
    for name, packages in LAYERS:
        for package in packages:
            if _within(module, package) and package.count(".") > depth:
                best, depth = name, package.count(".")
    assert best is not None, module
    return best


def _module_name(path: Path) -> str:
    for package, folder in SOURCES.items():
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    raise AssertionError(path)


def _modules() -> dict[str, Path]:
    found = {}
    for folder in SOURCES.values():
        for path in folder.rglob("*.py"):
            found[_module_name(path)] = path
    return found


def plumber_imports(module: str, path: Path) -> set[str]:
    """The plumber modules (or packages) ``module`` imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            imported.update(f"{base}.{a.name}" for a in node.names)
            imported.add(base)
    known = _modules()
    resolved = set()
    for name in imported:
        if not _within(name, "plumber"):
            continue
        while name not in known and "." in name:
            name = name.rpartition(".")[0]
        resolved.add(name)
    return resolved


def violations() -> list[str]:
    order = [name for name, _ in LAYERS]
    found = []
    for module, path in sorted(_modules().items()):
        layer = layer_of(module)
        for target in sorted(plumber_imports(module, path)):
            if target == "plumber" and module != "plumber":
                found.append(f"{module} imports the plumber package (a front-layer module)")
                continue
            to = layer_of(target)
            if to == layer:
                continue
            allowed = ONLY.get(layer)
            if (allowed is not None and to not in allowed) or order.index(to) > order.index(layer):
                found.append(f"{module} ({layer}) imports {target} ({to})")
    return found


def test_imports_only_go_down_the_layers():
    assert violations() == []


def test_every_module_is_in_a_layer_folder_not_loose_at_the_top():
    loose = sorted(p.name for p in (ROOT / "plumber").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py", "objectcache.py"]


def test_the_checker_sees_an_upward_import_inside_a_function(tmp_path, monkeypatch):
    fake = tmp_path / "plumber" / "records"
    fake.mkdir(parents=True)
    source = fake / "bad.py"
    source.write_text("def f():\n    from plumber.tuner.derive import derive_plan\n")
    imports = plumber_imports("plumber.records.bad", source)
    assert imports == {"plumber.tuner.derive"}
    assert layer_of("plumber.tuner.derive") == "tuning"
    assert layer_of("plumber.records.bad") == "records"


@pytest.mark.parametrize("module", ["plumber", "plumber.records.profile", "plumber.analyzers",
                                    "plumber.reports", "plumber.objectcache", "plumber.gate"])
def test_importing_loads_no_framework_numpy_or_jinja2(module):
    code = (
        f"import sys, {module}; "
        "heavy = ('tensorflow', 'torch', 'keras', 'numpy', 'pandas', 'jinja2', 'matplotlib'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
