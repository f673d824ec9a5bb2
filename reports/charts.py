"""Bar and line charts drawn as inline SVG: the bounds chart and resource timelines.

Long runs sample resources thousands of times; a chart a few hundred
pixels wide cannot show more than a few hundred points, so series are
down-sampled to at most :data:`MAX_POINTS` (keeping each bucket's minimum
and maximum, so short spikes survive) and the report stays small.

The timelines shade the pipelines' steady windows, and the charts of
quantities the verdict uses state their mean over those windows beside the
whole run's (:mod:`plumber.reports.steady`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from plumber.analyzers.results import Bound
from plumber.records.profile import SteadySpan, TimeSeries
from plumber.reports import format as fmt
from plumber.reports.steady import SteadyWindows, window_mean
from plumber.reports.svg import element, fit, nice_ceiling, num, svg, text, title

MAX_POINTS = 600

_BAR_LABEL_W = 230.0
_BAR_W = 430.0
_BAR_VALUE_W = 90.0
_BAR_ROW = 26.0
_BAR_TOP = 30.0
#: Bars stop at this multiple of the slowest bound, so the bounds that
#: matter (the ones near the bottleneck) keep a readable length.
_BAR_ZOOM = 5.0

_LINE_W = 520.0
_LINE_H = 150.0
_LINE_LEFT = 58.0
_LINE_RIGHT = 20.0
_LINE_TOP = 24.0
_LINE_BOTTOM = 24.0


@dataclass(frozen=True)
class Chart:
    """A figure with its heading and a one-line caption."""

    title: str
    caption: str
    svg: Markup


@dataclass(frozen=True)
class Series:
    """One line of a timeline chart: its legend label and its values."""

    label: str
    values: Sequence[float]


def downsample(
    t: Sequence[float], values: Sequence[float], max_points: int = MAX_POINTS
) -> list[tuple[float, float]]:
    """At most ``max_points`` finite ``(t, value)`` pairs, in time order.

    Samples are split into ``max_points // 2`` buckets and each keeps its
    minimum and maximum, so a one-sample spike still shows.
    """
    pairs = zip(t, values, strict=False)
    points = [(ti, vi) for ti, vi in pairs if math.isfinite(ti) and math.isfinite(vi)]
    if len(points) <= max_points:
        return points
    buckets = max(max_points // 2, 1)
    out: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[b * len(points) // buckets : (b + 1) * len(points) // buckets]
        if not chunk:
            continue
        low = min(range(len(chunk)), key=lambda i: chunk[i][1])
        high = max(range(len(chunk)), key=lambda i: chunk[i][1])
        out.extend(chunk[i] for i in sorted({low, high}))
    return out


def bounds_chart(bounds: Sequence[Bound], observed_rate: float, binding: Bound) -> Markup:
    """Horizontal bars of each bound's rate, slowest first, observed rate as a line.

    The binding bound is highlighted. Bars longer than the axis (far from
    the bottleneck) are cut and marked with a break; an unbounded one (a
    pass-through stage) or an unknown one (NaN) is an empty outline that
    says which.
    """
    rows = sorted(bounds, key=lambda b: b.rate if fmt.is_number(b.rate) else math.inf)
    finite = [b.rate for b in rows if fmt.is_number(b.rate) and b.rate > 0]
    reference = finite + ([observed_rate] if fmt.is_number(observed_rate) else [])
    top = min(max(reference, default=1.0), _BAR_ZOOM * min(finite, default=1.0))
    axis_max = nice_ceiling(max(top, observed_rate * 1.05 if fmt.is_number(observed_rate) else 0))
    scale = _BAR_W / axis_max
    height = _BAR_TOP + _BAR_ROW * len(rows) + 24
    parts: list[Markup] = []
    for i, bound in enumerate(rows):
        y = _BAR_TOP + i * _BAR_ROW
        cls = "bar binding" if bound == binding else "bar"
        label = fit(bound.name, _BAR_LABEL_W - 12, 12)
        parts.append(text(_BAR_LABEL_W - 10, y + 16, label, "bar-label", anchor="end"))
        if not fmt.is_number(bound.rate):
            # An outline across the whole axis, its label past the end where the
            # observed-rate line cannot cross it.
            track = {"x": _BAR_LABEL_W, "y": y + 4, "width": _BAR_W, "height": _BAR_ROW - 8}
            parts.append(element("rect", {**track, "rx": 3, "class": "bar open"}))
            label = fmt.UNBOUNDED if bound.rate == math.inf else "unknown"
            parts.append(text(_BAR_LABEL_W + _BAR_W + 6, y + 16, label, "bar-value"))
            continue
        length = min(max(bound.rate, 0.0) * scale, _BAR_W)
        bar = element(
            "rect",
            {
                "x": _BAR_LABEL_W,
                "y": y + 4,
                "width": length,
                "height": _BAR_ROW - 8,
                "rx": 3,
                "class": cls,
            },
            title(f"{bound.name}: {fmt.rate(bound.rate)}\n{bound.detail}"),
        )
        parts.append(bar)
        if bound.rate * scale > _BAR_W:
            parts.append(
                element(
                    "path",
                    {"d": _break_mark(_BAR_LABEL_W + _BAR_W - 14, y + 4), "class": "bar-break"},
                )
            )
        parts.append(text(_BAR_LABEL_W + length + 6, y + 16, fmt.rate(bound.rate), "bar-value"))
    parts.append(_bar_axis(axis_max, height))
    if fmt.is_number(observed_rate):
        x = _BAR_LABEL_W + min(observed_rate * scale, _BAR_W)
        parts.append(
            element(
                "line",
                {"x1": x, "x2": x, "y1": _BAR_TOP - 6, "y2": height - 24, "class": "observed"},
            )
        )
        parts.append(
            text(
                x,
                _BAR_TOP - 12,
                f"observed {fmt.rate(observed_rate)}",
                "observed-label",
                anchor="middle",
            )
        )
    width = _BAR_LABEL_W + _BAR_W + _BAR_VALUE_W
    return svg(width, height, "Upper bounds on the pipeline's rate", *parts, cls="bounds")


def _break_mark(x: float, y: float) -> str:
    """Two slanted strokes across a bar: this bar is longer than drawn."""
    h = _BAR_ROW - 8
    return f"M{num(x)},{num(y + h)} l5,{-h} M{num(x + 5)},{num(y + h)} l5,{-h}"


def _bar_axis(axis_max: float, height: float) -> Markup:
    """Ticks under the bars at 0, 1/4 ... 1 of the axis, labelled as rates."""
    y = height - 22
    parts = [
        element(
            "line",
            {"x1": _BAR_LABEL_W, "x2": _BAR_LABEL_W + _BAR_W, "y1": y, "y2": y, "class": "axis"},
        )
    ]
    for k in range(5):
        x = _BAR_LABEL_W + _BAR_W * k / 4
        parts.append(text(x, y + 15, fmt.rate(axis_max * k / 4), "tick", anchor="middle"))
    return Markup("").join(parts)


def line_chart(
    t: Sequence[float],
    series: Sequence[Series],
    unit: Callable[[float], str],
    label: str,
    y_max: float | None = None,
    windows: Sequence[SteadyWindows] = (),
) -> Markup:
    """A timeline of one or more series over run time ``t`` (seconds).

    ``unit`` formats the y ticks; ``y_max`` fixes the axis (100 for
    percentages of the machine) instead of fitting it to the data. The
    spans of ``windows`` are shaded under the lines.
    """
    lines = [(s.label, downsample(t, s.values)) for s in series]
    t_end = max((p[0] for _, pts in lines for p in pts), default=0.0) or 1.0
    top = max((p[1] for _, pts in lines for p in pts), default=0.0)
    y_axis = y_max if y_max is not None and top <= y_max else nice_ceiling(top)
    plot_w = _LINE_W - _LINE_LEFT - _LINE_RIGHT
    plot_h = _LINE_H - _LINE_TOP - _LINE_BOTTOM

    def at(point: tuple[float, float]) -> str:
        x = _LINE_LEFT + point[0] / t_end * plot_w
        y = _LINE_TOP + plot_h - point[1] / y_axis * plot_h
        return f"{num(x)},{num(y)}"

    parts = [_line_grid(y_axis, t_end, unit)]
    named = sum(1 for w in windows if w.spans) > 1
    for window in windows:
        whose = f" of {window.pipeline_id}" if named else ""
        parts.extend(_shade(span, whose, t_end) for span in window.spans)
    for i, (name, points) in enumerate(lines):
        cls = f"line s{i}"
        if points:
            parts.append(element("polyline", {"points": " ".join(map(at, points)), "class": cls}))
        if len(lines) > 1:
            x = _LINE_LEFT + 8 + 140 * i
            parts.append(
                element("rect", {"x": x, "y": 6, "width": 12, "height": 3, "class": f"key s{i}"})
            )
            parts.append(text(x + 16, 11, fit(name, 120, 11), "legend"))
    return svg(_LINE_W, _LINE_H, label, *parts, cls="timeline")


def _shade(span: SteadySpan, whose: str, t_end: float) -> Markup:
    """A band over the plot's height from the span's start to its end, cut at the axis."""
    plot_w = _LINE_W - _LINE_LEFT - _LINE_RIGHT
    start = min(max(span.start_s / t_end, 0.0), 1.0)
    end = min(max(span.end_s / t_end, start), 1.0)
    band = {
        "x": _LINE_LEFT + start * plot_w,
        "y": _LINE_TOP,
        "width": (end - start) * plot_w,
        "height": _LINE_H - _LINE_TOP - _LINE_BOTTOM,
        "class": "steady",
    }
    return element(
        "rect",
        band,
        title(
            f"steady window{whose}: {fmt.seconds(span.start_s)} to {fmt.seconds(span.end_s)}, "
            f"{fmt.count(span.steps)} steps after the first"
        ),
    )


def _line_grid(y_axis: float, t_end: float, unit: Callable[[float], str]) -> Markup:
    """Horizontal grid lines with y labels, and time ticks along the bottom."""
    plot_w = _LINE_W - _LINE_LEFT - _LINE_RIGHT
    bottom = _LINE_H - _LINE_BOTTOM
    plot_h = bottom - _LINE_TOP
    parts = []
    for k in range(3):
        y = bottom - plot_h * k / 2
        parts.append(
            element(
                "line",
                {
                    "x1": _LINE_LEFT,
                    "x2": _LINE_LEFT + plot_w,
                    "y1": y,
                    "y2": y,
                    "class": "grid" if k else "axis",
                },
            )
        )
        parts.append(text(_LINE_LEFT - 6, y + 4, unit(y_axis * k / 2), "tick", anchor="end"))
    step = _time_step(t_end)
    for k in range(int(t_end / step) + 1):
        x = _LINE_LEFT + plot_w * k * step / t_end
        anchor = "start" if k == 0 else "middle"
        parts.append(text(x, bottom + 16, fmt.seconds(k * step), "tick", anchor=anchor))
    return Markup("").join(parts)


def _time_step(t_end: float) -> float:
    """A round tick spacing (1, 2, 5 s ... 30 s, 1, 2, 5 min ...) with at most 6 intervals."""
    steps = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    return next((s for s in steps if t_end / s <= 6), nice_ceiling(t_end / 6))


def timelines(
    resources: TimeSeries, windows: Sequence[SteadyWindows] = ()
) -> tuple[Chart, ...]:
    """Resource charts for the sensors that recorded samples (empty ones are skipped).

    Each shades the steady ``windows``. Machine CPU (other processes
    crowding the cores), process CPU (the cores the run kept busy) and disk
    reads (a busy disk) are quantities the verdict uses, so their captions
    give the mean over the steady window too, or say there is none.
    """
    specs: list[tuple[str, list[Series], str, float | None, bool]] = [
        ("Machine CPU", [Series("CPU", resources.cpu_percent)], "percent", 100.0, True),
        (
            "Process CPU (100% = one core)",
            [Series("process", resources.process_cpu_percent)],
            "percent",
            None,
            True,
        ),
        ("Disk reads", [Series("read", resources.disk_read_bps)], "bandwidth", None, True),
        (
            "Network",
            [Series("received", resources.net_recv_bps), Series("sent", resources.net_sent_bps)],
            "bandwidth",
            None,
            False,
        ),
        ("Process memory (RSS)", [Series("RSS", resources.process_rss_bytes)], "size", None,
         False),
        ("GPU utilisation", [Series("GPU", resources.gpu_util_percent)], "percent", 100.0, False),
        ("GPU memory", [Series("used", resources.gpu_memory_used_bytes)], "size", None, False),
    ]
    units = {"percent": fmt.percent, "bandwidth": fmt.bandwidth, "size": fmt.size}
    charts = []
    for name, series, unit, y_max, verdict in specs:
        present = [s for s in series if s.values]
        if not present or not resources.t:
            continue
        steady = windows if verdict else None
        caption = "; ".join(
            _series_caption(s, units[unit], resources.t, steady) for s in present
        )
        svg = line_chart(resources.t, present, units[unit], name, y_max, windows)
        charts.append(Chart(name, caption, svg))
    return tuple(charts)


def _series_caption(
    series: Series,
    unit: Callable[[float], str],
    t: Sequence[float],
    windows: Sequence[SteadyWindows] | None,
) -> str:
    """Mean and peak of a series, in the chart's unit; with ``windows``, its steady mean too."""
    values = [v for v in series.values if fmt.is_number(v)]
    if not values:
        return f"{series.label}: no finite samples"
    mean = sum(values) / len(values)
    peak = f"peak {unit(max(values))}"
    if windows is None:
        return f"{series.label}: mean {unit(mean)}, {peak}"
    steady = _steady_means(series, unit, t, windows)
    return f"{series.label}: mean {unit(mean)} over the run, {steady}, {peak}"


def _steady_means(
    series: Series, unit: Callable[[float], str], t: Sequence[float],
    windows: Sequence[SteadyWindows],
) -> str:
    """``71% over the steady window (shaded)``, one per pipeline when several have one."""
    placed = [w for w in windows if w.spans]
    if not placed:
        return "no steady window found"
    parts = []
    for window in placed:
        whose = (
            "the steady window" if len(windows) == 1 else f"{window.pipeline_id}'s steady window"
        )
        mean = window_mean(t, series.values, window.spans)
        parts.append(
            f"{unit(mean)} over {whose}" if mean is not None else f"no sample inside {whose}"
        )
    return ", ".join(parts) + " (shaded)"
