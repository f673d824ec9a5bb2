"""The worked notebook runs end to end and shows the planted bottleneck."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "profile_a_script.ipynb"


def test_worked_notebook_executes_and_names_the_bottleneck(tmp_path):
    copy = tmp_path / "notebooks" / NOTEBOOK.name
    copy.parent.mkdir()
    shutil.copy(NOTEBOOK, copy)
    (tmp_path / "tests").symlink_to(NOTEBOOK.parents[1] / "tests")
    notebook = nbformat.read(copy, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3",
        resources={"metadata": {"path": str(copy.parent)}},
    ).execute()
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "exit status 0" in text
    assert "bottleneck: map-0 parallelism" in text
    assert "num_parallel_calls=1 -> num_parallel_calls=2" in text
    assert (copy.parent / "plumber-out" / "notebook-expensive-map" / "report.html").exists()
