"""The HTML report in a real browser: offline, error-free, readable on the first screen.

Each report is opened from ``file://`` in headless Chromium with the network
cut off. The checks are what a reader relies on: the page loads with no
request but its own file, no console error, exception or dialog; the
headline (what is slow, why, what it gives) and the first recommendation
(what to change) are on the first 1280 x 800 screen; the graph marks the
bottleneck; the charts are drawn; nothing is wider than the page. The
screenshots are kept under pytest's temporary directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chromium_cdp import SCREEN, Page
from PIL import Image, ImageStat

from plumber.reports.charts import MAX_POINTS
from plumber.reports.html import write_html
from tests.report_samples import (
    IMG,
    SCRIPT,
    Case,
    consumer_bound_case,
    failed_case,
    hostile_case,
    input_bound_case,
    nested_case,
    planned_case,
    sample_diagnosis,
    sample_profile,
    torch_case,
)

pytestmark = pytest.mark.slow

CASES: dict[str, Callable[[], Case]] = {
    "input-bound": input_bound_case,
    "consumer-bound": consumer_bound_case,
    "failed-run": failed_case,
    "nested-interleave-zip": nested_case,
    "torch-loader-network": torch_case,
}

#: The most bytes a report may take, however long the run: time series are
#: down-sampled, so a 50,000-sample profile must fit.
SIZE_BUDGET = 300_000

#: The box of the first element matching a selector, in page coordinates,
#: and whether the browser actually shows it (display, visibility, opacity).
_BOX = """(selector) => {
  const el = document.querySelector(selector);
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY,
          left: r.left, right: r.right, width: r.width, height: r.height,
          shown: el.checkVisibility({opacityProperty: true, visibilityProperty: true})};
}"""

#: Containers whose content is wider than they are (they scroll sideways).
_OVERFLOWING = """Array.from(document.querySelectorAll('.scroll, main, section'))
  .filter(el => el.scrollWidth > el.clientWidth + 1)
  .map(el => (el.className || el.tagName) + ': ' + el.scrollWidth + ' > ' + el.clientWidth)"""


def _write(case: Case, path: Path) -> Path:
    profile, diagnoses = case
    return write_html(path, profile, diagnoses)


def _open(page: Page, report: Path) -> None:
    """Open ``report`` and check the page stayed offline and quiet while it loaded."""
    page.open(report.as_uri())
    assert page.requests == [report.as_uri()], "the report requested more than its own file"
    assert not page.console_errors, page.console_errors
    assert not page.exceptions, page.exceptions
    assert not page.dialogs, page.dialogs


def _box(page: Page, selector: str) -> dict[str, Any]:
    """The box of ``selector``; fails unless the element exists, is shown and has an area."""
    box = page.evaluate(f"({_BOX})({json.dumps(selector)})")
    assert box is not None, f"nothing matches {selector}"
    assert box["shown"] and box["width"] > 0 and box["height"] > 0, f"{selector} is not visible"
    return box


def _on_first_screen(page: Page, selector: str) -> None:
    box = _box(page, selector)
    assert box["bottom"] <= SCREEN[1], f"{selector} ends at {box['bottom']:.0f} px, below the fold"
    assert box["right"] <= SCREEN[0], f"{selector} ends at {box['right']:.0f} px, off the screen"


def _assert_not_blank(png: Path, size: tuple[int, int] | None = None) -> None:
    """A screenshot with the expected size that shows something: not one flat colour."""
    with Image.open(png) as image:
        if size is not None:
            assert image.size == size
        grey = image.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 20, f"{png} looks blank"
        dark = sum(grey.histogram()[:128]) / (grey.width * grey.height)
        assert dark > 0.005, f"{png} has almost no text or lines"


def _screenshots(page: Page, directory: Path, name: str) -> None:
    first = page.screenshot(directory / f"{name}-first.png")
    _assert_not_blank(first, SCREEN)
    _assert_not_blank(page.screenshot(directory / f"{name}-full.png", full_page=True))


def _check_report(page: Page, report: Path, screenshots: Path, name: str) -> None:
    """Everything a reader needs is shown, the first screen answers the question, and fits."""
    _open(page, report)
    _on_first_screen(page, ".headline .summary")
    _on_first_screen(page, ".headline .metric")  # the bottleneck and why
    recommendations = page.evaluate("document.querySelectorAll('ol.recs > li').length")
    _on_first_screen(page, "ol.recs > li" if recommendations else "p.no-change")
    _box(page, "svg.graph g.node")
    _box(page, "svg.bounds rect.bar")
    timelines = page.evaluate("document.querySelectorAll('svg.timeline').length")
    assert timelines >= 1
    for k in range(1, timelines + 1):
        # A series that stayed at zero is a flat line: it has no height, yet it is drawn.
        chart = f".charts figure:nth-of-type({k}) svg.timeline"
        _box(page, chart)
        assert page.evaluate(f"document.querySelectorAll({json.dumps(chart + ' polyline')})"
                             ".length") >= 1, f"{chart} draws no line"
    assert page.evaluate(_OVERFLOWING) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREEN[0]
    _screenshots(page, screenshots, name)


@pytest.mark.parametrize("name", list(CASES))
def test_report_reads_offline_with_the_answer_on_the_first_screen(
    name: str, page: Page, tmp_path: Path, screenshots: Path
) -> None:
    report = _write(CASES[name](), tmp_path / f"{name}.html")
    _check_report(page, report, screenshots, name)


def test_real_profile_report_reads_offline_and_marks_the_map(
    real_report: Path, page: Page, screenshots: Path
) -> None:
    _check_report(page, real_report, screenshots, "real-expensive-map")
    _box(page, 'svg.graph g.node.bottleneck[data-stage="map-0"] rect.badge')
    recommendation = page.evaluate("document.querySelector('ol.recs > li').textContent")
    assert "map-0" in recommendation and "num_parallel_calls" in recommendation
    # The profile holds absolute paths; the page shows the file name, the path on hover.
    location = page.evaluate(
        "[document.querySelector('ol.recs code.loc').textContent, "
        "document.querySelector('ol.recs code.loc').title]"
    )
    assert location[0] == "expensive_map.py:26"
    assert location[1].endswith("tests/integration/pipelines/expensive_map.py:26")


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "dropped"])
def test_tuning_plan_reads_as_edits_on_the_first_screen(
    kept: bool, page: Page, tmp_path: Path, screenshots: Path
) -> None:
    profile, diagnoses, plan = planned_case(kept)
    report = write_html(tmp_path / "report.html", profile, diagnoses, plan)
    name = f"plan-{'kept' if kept else 'dropped'}"
    _check_report(page, report, screenshots, name)  # no dialog from the planted payloads
    _on_first_screen(page, ".plan .plan-outcome")
    _on_first_screen(page, ".plan ol.plan-edits > li")
    location = page.evaluate(
        "[document.querySelector('.plan code.loc').textContent, "
        "document.querySelector('.plan code.loc').title]"
    )
    assert location == ["input_pipeline.py:49", location[1]]
    assert location[1].endswith("vision_models/data/input_pipeline.py:49")
    text = page.evaluate("document.querySelector('.plan').textContent")
    assert "num_parallel_calls=None" in text and f"/tmp/cache{IMG}" in text
    assert ("Verified by plumber tune" in text) == kept
    assert ("not recommended" in text) != kept


def test_graph_marks_the_bottleneck_stage(page: Page, tmp_path: Path) -> None:
    _open(page, _write(input_bound_case(), tmp_path / "report.html"))
    badge = _box(page, 'svg.graph g.node.bottleneck[data-stage="map-0"] rect.badge')
    node = _box(page, 'svg.graph g.node.bottleneck[data-stage="map-0"] > rect')
    assert node["left"] <= badge["left"] and badge["right"] <= node["right"] + 1
    marked = page.evaluate("document.querySelectorAll('svg.graph g.node.bottleneck').length")
    assert marked == 1
    row = _box(page, 'table.stages tr.bottleneck[data-stage="map-0"]')
    assert row["height"] > 0


def test_rejected_changes_are_greyed_and_labelled_not_proposed(page: Page, tmp_path: Path) -> None:
    _open(page, _write(input_bound_case(), tmp_path / "report.html"))
    rows = page.evaluate(
        """Array.from(document.querySelectorAll('table.what-ifs tbody tr')).map(tr => ({
             text: tr.textContent, ruled: tr.classList.contains('ruled-out'),
             color: getComputedStyle(tr.cells[0]).color}))"""
    )
    proposed = [r for r in rows if not r["ruled"]]
    ruled_out = [r for r in rows if r["ruled"]]
    assert len(proposed) == 1 and len(ruled_out) == 1
    assert "not proposed" in ruled_out[0]["text"] and "not proposed" not in proposed[0]["text"]
    assert ruled_out[0]["color"] != proposed[0]["color"], "the rejected change is not greyed"
    recommendations = page.evaluate("document.querySelector('ol.recs').textContent")
    assert "cache" not in recommendations


def test_unbounded_and_unknown_rates_are_written_out(page: Page, tmp_path: Path) -> None:
    _open(page, _write(nested_case(), tmp_path / "report.html"))
    prefetch = page.evaluate(
        "document.querySelector('table.stages tr[data-stage=\"prefetch-0\"]').textContent"
    )
    assert "unbounded" in prefetch and "\u221e" not in prefetch and "nan" not in prefetch.lower()
    fixed = page.evaluate("document.querySelectorAll('.headline .metric')[2].textContent")
    assert "\u2014" in fixed and "nan" not in fixed.lower()


def test_user_strings_show_literally_and_never_run(
    page: Page, tmp_path: Path, screenshots: Path
) -> None:
    payload = f"{SCRIPT}{IMG}"
    _open(page, _write(hostile_case(), tmp_path / "report.html"))  # no dialog, no request
    assert page.evaluate("document.scripts.length") == 1  # the report's own
    assert page.evaluate("document.querySelectorAll('img, [onerror]').length") == 0
    assert payload in page.evaluate("document.querySelector('h1').textContent")
    assert payload in page.evaluate("document.title")
    stage = page.evaluate(
        "document.querySelector('table.stages tr[data-stage=\"map-0\"]').textContent"
    )
    assert f"Map{payload}" in stage
    labels = page.evaluate(
        "Array.from(document.querySelectorAll('svg.graph g.node')).map(g => g.dataset.stage)"
    )
    assert f"labels{payload}" in labels
    path = page.evaluate(
        "document.querySelector('table.stages tr[data-stage=\"map-0\"] code[title]').title"
    )
    assert path == f"/data/{payload}.py:7"
    assert payload in page.evaluate("document.querySelector('pre.error').textContent")
    _screenshots(page, screenshots, "hostile-strings")


def test_torch_pool_workers_and_network_show_and_planted_markup_never_runs(
    page: Page, tmp_path: Path, screenshots: Path
) -> None:
    payload = f"{SCRIPT}{IMG}"
    _open(page, _write(torch_case(payload), tmp_path / "report.html"))  # no dialog, no request
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.querySelectorAll('img, [onerror]').length") == 0
    pool = _box(page, 'svg.graph g.node.pool[data-stage="workers"] > rect')
    for member in ("fetch", "transform_0", "transform_1", "collate"):
        inner = _box(page, f'svg.graph g.node[data-stage="{member}"] > rect')
        assert pool["top"] < inner["top"] and inner["bottom"] < pool["bottom"]
        assert pool["left"] < inner["left"] and inner["right"] < pool["right"]
    indent = page.evaluate(
        "[getComputedStyle(document.querySelector('tr[data-stage=\"fetch\"] td')).paddingLeft,"
        " getComputedStyle(document.querySelector('tr[data-stage=\"workers\"] td')).paddingLeft]"
    )
    assert float(indent[0].rstrip("px")) > float(indent[1].rstrip("px"))
    error = page.evaluate("document.querySelector('tr.error .stage-error').textContent")
    assert payload in error and "worker 1 (pid 4202)" in error
    _box(page, "table.workers tr.large td.growth")
    network = page.evaluate("document.querySelector('#network').textContent")
    assert f"bucket.s3.local:9000{payload}" in network
    _screenshots(page, screenshots, "torch-hostile-strings")


def test_long_run_report_stays_small_and_loads(page: Page, tmp_path: Path) -> None:
    report = write_html(
        tmp_path / "report.html", sample_profile(samples=50_000), [sample_diagnosis()]
    )
    assert report.stat().st_size < SIZE_BUDGET
    _open(page, report)
    points = page.evaluate(
        "Array.from(document.querySelectorAll('svg.timeline polyline'))"
        ".map(p => p.points.numberOfItems)"
    )
    assert points and max(points) <= MAX_POINTS
    _box(page, "svg.timeline polyline")


def test_the_recorder_catches_what_the_report_must_not_do(page: Page, tmp_path: Path) -> None:
    """The checks above can fail: a page that fetches, logs, throws and alerts is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><img src="http://192.0.2.1/pixel.png">'
        '<script>console.error("logged"); alert("hello"); throw new Error("thrown");</script>'
    )
    page.open(bad.as_uri())
    assert "http://192.0.2.1/pixel.png" in page.requests
    assert any("logged" in e for e in page.console_errors)
    assert any("thrown" in e for e in page.exceptions)
    assert page.dialogs == ["hello"]
