"""The profile's charts as matplotlib figures: bounds against the observed rate, resources.

Figures are built without pyplot, so drawing one registers nothing global
and a notebook shows it exactly once: :class:`InlineFigure` renders itself
as PNG when Jupyter displays it. It is an ordinary ``Figure`` otherwise
(``savefig``, axes, styling all work).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from plumber.analyzers.results import Diagnosis
from plumber.notebook._optional import require
from plumber.records.profile import Profile
from plumber.reports import format as fmt

require("matplotlib", "plumber's charts")

from matplotlib.axes import Axes  # noqa: E402 - only after the friendly check
from matplotlib.figure import Figure  # noqa: E402

_BAR = "#9db4c0"
_BINDING = "#d1495b"
_OBSERVED = "#222222"


class InlineFigure(Figure):
    """A matplotlib Figure that Jupyter displays as a PNG without pyplot."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def bounds_figure(profile: Profile, diagnoses: Sequence[Diagnosis]) -> InlineFigure:
    """One horizontal bar chart per pipeline: each bound's rate, the binding one marked.

    The x axis is logarithmic because bounds span orders of magnitude (a
    slow map at tens per second, the consumer at thousands).
    """
    shown = [d for d in diagnoses if any(fmt.is_number(b.rate) for b in d.bounds)]
    heights = [1.2 + 0.35 * len(d.bounds) for d in shown]
    figure = InlineFigure(figsize=(8, sum(heights) or 1.5), layout="constrained")
    if not shown:
        axes = figure.add_subplot()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no bounds: no pipeline was analysed", ha="center", va="center")
        return figure
    grid = figure.add_gridspec(len(shown), 1, height_ratios=heights)
    for i, diagnosis in enumerate(shown):
        axes = figure.add_subplot(grid[i])
        finite = (b for b in diagnosis.bounds if fmt.is_number(b.rate))
        bounds = sorted(finite, key=lambda b: -b.rate)
        colors = [_BINDING if b == diagnosis.bottleneck else _BAR for b in bounds]
        axes.barh([b.name for b in bounds], [b.rate for b in bounds], color=colors)
        for y, bound in enumerate(bounds):
            axes.annotate(
                f" {fmt.rate(bound.rate)}", (bound.rate, y), va="center", fontsize="small"
            )
        if fmt.is_number(diagnosis.observed_rate):
            axes.axvline(
                diagnosis.observed_rate, color=_OBSERVED, linestyle="--",
                label=f"observed {fmt.rate(diagnosis.observed_rate)}",
            )
            axes.legend(loc="upper right", fontsize="small")
        axes.set_xscale("log")
        axes.set_xlim(right=max(b.rate for b in bounds) * 6)  # room for the value labels
        axes.set_xlabel("root elements per second (log scale)")
        axes.set_title(f"{diagnosis.pipeline_id}: bounds on the rate", loc="left")
    return figure


def resources_figure(profile: Profile) -> InlineFigure:
    """CPU (machine and this process), disk and network throughput, and memory over time."""
    series = profile.resources
    figure = InlineFigure(figsize=(8, 6.5), layout="constrained")
    cpu, io_axes, memory = figure.subplots(3, 1, sharex=True)
    t = series.t
    if not t:
        for axes in (cpu, io_axes, memory):
            axes.text(0.5, 0.5, "no samples (the run was too short)", ha="center", va="center",
                      transform=axes.transAxes)
    cores = profile.machine.cores_usable or float(profile.machine.cores_logical or 1)
    _line(cpu, t, series.cpu_percent, "machine (all cores)")
    process = [p / cores for p in series.process_cpu_percent]
    _line(cpu, t, process, "this process (share of usable cores)")
    _line(cpu, t, series.gpu_util_percent, "GPU")
    cpu.set_ylabel("busy %")
    cpu.set_ylim(0, 105)
    _line(io_axes, t, [b / 1e6 for b in series.disk_read_bps], "disk read")
    _line(io_axes, t, [b / 1e6 for b in series.net_recv_bps], "network received")
    io_axes.set_ylabel("MB/s")
    rss = [b / 1e6 for b in series.process_rss_bytes]
    _line(memory, t, rss, "this process (RSS)")
    memory.set_ylabel("MB")
    memory.set_ylim(0, max(rss, default=1.0) * 1.3)  # from zero, with room for the legend
    memory.ticklabel_format(axis="y", style="plain", useOffset=False)
    memory.set_xlabel("seconds since the run started")
    for axes in (cpu, io_axes, memory):
        if axes.get_lines():
            axes.legend(loc="best", fontsize="small")
    cpu.set_title("Resources during the run", loc="left")
    return figure


def _line(axes: Axes, t: Sequence[float], values: Sequence[float], label: str) -> None:
    """Plot ``values`` against ``t`` when the series was recorded (absent sensors are empty)."""
    if values and len(values) == len(t):
        axes.plot(t, values, label=label)
