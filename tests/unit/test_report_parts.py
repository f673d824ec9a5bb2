"""Building blocks of the reports: unit formatting, graph layout, down-sampling."""

from __future__ import annotations

import math

from plumber.records.profile import Pipeline, Stage
from plumber.reports import format as fmt
from plumber.reports.charts import downsample
from plumber.reports.graph import layout
from plumber.reports.svg import element
from tests.report_samples import sample_pipeline


def test_numbers_are_formatted_with_units_and_three_digits() -> None:
    assert fmt.rate(1234) == "1,234/s"
    assert fmt.rate(45.6) == "45.6/s"
    assert fmt.milliseconds(0.0123) == "12.3 ms"
    assert fmt.bandwidth(45e6) == "45 MB/s"
    assert fmt.size(2.5e9) == "2.5 GB"
    assert fmt.seconds(150) == "2 min 30 s"
    assert fmt.fraction(0.034) == "3.4%"
    assert fmt.speedup(2.1) == "2.1\u00d7"


def test_missing_values_print_as_a_dash_never_as_zero() -> None:
    for render in (fmt.rate, fmt.milliseconds, fmt.fraction, fmt.count, fmt.seconds):
        assert render(None) == fmt.MISSING
        assert render(math.nan) == fmt.MISSING
    assert fmt.rate(math.inf) == "unbounded"


def test_layout_puts_sources_on_top_and_the_root_at_the_bottom() -> None:
    pipeline = sample_pipeline()
    placed = layout(pipeline)
    y = {sid: pos[1] for sid, pos in placed.positions.items()}
    assert y["source-0"] == y["source-1"] == y["interleave-0>TFRecord"] == min(y.values())
    assert y["interleave-0>TFRecord"] < y["interleave-0"] < y["map-0"] < y["zip-0"]
    assert y["tf-prefetch-above-batch-0"] == max(y.values())
    assert placed.order[-1] == "tf-prefetch-above-batch-0"


def test_layout_keeps_boxes_of_one_layer_apart() -> None:
    placed = layout(sample_pipeline())
    rows: dict[float, list[float]] = {}
    for x, y in placed.positions.values():
        rows.setdefault(y, []).append(x)
    for xs in rows.values():
        xs.sort()
        assert all(b - a >= 200 for a, b in zip(xs, xs[1:], strict=False))


def test_layout_survives_cycles_and_dangling_inputs() -> None:
    stages = (
        Stage(id="a", kind="map", op="Map", inputs=("b", "missing")),
        Stage(id="b", kind="map", op="Map", inputs=("a",)),
        Stage(id="c", kind="source", op="Range", nested_in="nowhere"),
    )
    placed = layout(Pipeline(id="p", root="a", stages=stages))
    assert set(placed.positions) == {"a", "b", "c"}


def test_downsample_caps_points_and_keeps_spikes() -> None:
    t = [i * 0.1 for i in range(100_000)]
    values = [0.0] * 100_000
    values[54_321] = 99.0
    points = downsample(t, values, max_points=600)
    assert len(points) <= 600
    assert (t[54_321], 99.0) in points
    assert points == sorted(points)


def test_svg_elements_escape_text_and_attributes() -> None:
    markup = element("text", {"data-x": '"><script>'}, "<b>&")
    assert str(markup) == '<text data-x="&#34;&gt;&lt;script&gt;">&lt;b&gt;&amp;</text>'
