"""The worked notebook runs end to end, and each section shows what it promises.

Cells are found by their tags (cell metadata), so the notebook's prose can
change without breaking the test.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "profile_a_pipeline.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook, executed in a scratch copy of the layout it expects."""
    root = tmp_path_factory.mktemp("nb")
    copy = root / "notebooks" / NOTEBOOK.name
    copy.parent.mkdir()
    shutil.copy(NOTEBOOK, copy)
    (root / "tests").symlink_to(NOTEBOOK.parents[1] / "tests")
    notebook = nbformat.read(copy, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3",
        resources={"metadata": {"path": str(copy.parent)}},
    ).execute()
    return notebook, copy.parent


def outputs(executed, tag: str) -> list[dict]:
    notebook, _ = executed
    (cell,) = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    return cell.outputs


def data(executed, tag: str, mime: str) -> str:
    found = [o["data"][mime] for o in outputs(executed, tag) if mime in o.get("data", {})]
    assert found, f"cell {tag!r} showed no {mime}"
    return found[-1]


def text(executed, tag: str) -> str:
    return "".join(o.get("text", "") for o in outputs(executed, tag))


def table_shape(page: str) -> tuple[int, int]:
    """(rows, columns) of a DataFrame's HTML, not counting the index."""
    head = page[page.index("<thead>") + len("<thead>"): page.index("</thead>")]
    body = page[page.index("<tbody>"): page.index("</tbody>")]
    first_header_row = head[: head.index("</tr>")]
    return body.count("<tr"), first_header_row.count("<th") - 1


def test_summary_names_the_planted_bottleneck_with_its_line_and_rates(executed):
    page = data(executed, "summary", "text/html")
    assert re.search(r"map-0 \(map ParallelMapV2 at [^)]*\.py:\d+\)", page)
    assert "too little parallelism" in page
    assert "observed" in page and "predicted if fixed" in page
    assert "as fast as possible" in page
    assert "num_parallel_calls=1" in page


def test_dataframes_have_their_documented_shapes(executed):
    from plumber.notebook.tables import BOUND_COLUMNS, STAGE_COLUMNS

    stages = data(executed, "stages", "text/html")
    rows, columns = table_shape(stages)
    assert rows >= 4 and columns == len(STAGE_COLUMNS)  # range, map, batch, prefetch
    assert "map-0" in stages
    rows, columns = table_shape(data(executed, "bounds", "text/html"))
    assert rows >= 2 and columns == len(BOUND_COLUMNS)
    rows, columns = table_shape(data(executed, "what-if", "text/html"))
    assert rows >= 1 and columns == 5
    assert table_shape(data(executed, "resources", "text/html")) == (2, 2)


def test_charts_are_drawn_as_images(executed):
    for tag in ("bounds-chart", "resources-chart"):
        assert data(executed, tag, "image/png")


def test_recommendations_point_at_the_map(executed):
    page = data(executed, "recommend", "text/html")
    assert "num_parallel_calls=1</code> &rarr; <code>num_parallel_calls=2" in page
    assert re.search(r"measured: +\d+\.\d batches/s", text(executed, "fixed"))


def test_magic_profiles_the_cell_and_shows_the_result(executed):
    page = data(executed, "magic", "text/html")
    assert re.search(r"map-0 \(map ParallelMapV2 at [^)]*\.py:1\)", page)
    assert "stopped" not in page  # the loop in the cell is the consumer, not plumber's
    assert not [o for o in outputs(executed, "magic") if o.get("output_type") == "error"]


def test_profile_is_saved_and_reported(executed):
    _, folder = executed
    assert (folder / "plumber-out" / "notebook" / "profile.json").exists()
    assert (folder / "plumber-out" / "notebook" / "report.html").exists()


def test_script_profiled_by_the_cli_reads_back_as_a_result(executed):
    assert "exit status 0" in text(executed, "script")
    page = data(executed, "script", "text/html")
    assert "map-0 (map ParallelMapV2 at" in page and "expensive_map.py" in page
    assert "num_parallel_calls=1</code> &rarr; <code>num_parallel_calls=2" in page
