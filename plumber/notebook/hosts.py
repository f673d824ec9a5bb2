"""``plumber.compare_hosts(...)``: the hosts of one data-parallel job, compared in a notebook.

The notebook's side of ``plumber report host0.json host1.json ...``: the
same comparison (:mod:`plumber.analyzers.hosts`), shown in Jupyter as the
verdict and the hosts side by side, with DataFrames of the hosts and of
the differences, and the multi-host HTML report one ``.report(path)`` away.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from plumber.analyzers.hosts import HostComparison, names_from_files
from plumber.analyzers.hosts import compare_hosts as compare
from plumber.notebook.result import ProfileResult
from plumber.notebook.summary import _CELL, _NUM, escape
from plumber.records.profile import Profile
from plumber.reports.hosts import hosts_summary, hosts_view, write_hosts_html

if TYPE_CHECKING:
    import pandas as pd

#: What names one host's profile: a saved file, the record, or a notebook result.
HostProfile = str | os.PathLike | Profile | ProfileResult

_SLOWEST = ' style="font-weight:bold"'


class HostsResult:
    """One job's hosts compared: ``.comparison`` (the analysis), ``.hosts`` (their names).

    ``.slowest`` maps each pipeline id to its slowest host's name.
    """

    def __init__(self, comparison: HostComparison) -> None:
        self.comparison = comparison
        self.hosts = comparison.hosts
        self.slowest = {p.pipeline_id: p.slowest_host for p in comparison.pipelines}

    def __str__(self) -> str:
        """The lines ``plumber report host0.json host1.json`` prints."""
        return hosts_summary(self.comparison)

    def __repr__(self) -> str:
        slowest = "; ".join(f"{p}: {h}" for p, h in self.slowest.items())
        return f"<HostsResult {len(self.hosts)} hosts, slowest {slowest}>"

    def _repr_html_(self) -> str:
        view = hosts_view(self.comparison)
        head = "".join(f"<th {_NUM}>{escape(h)}</th>" for h in view.hosts)
        parts = ['<div class="plumber-hosts">']
        for pipeline in view.pipelines:
            parts.append(f"<p><b>Pipeline {escape(pipeline.id)}</b>: "
                         f"{escape(pipeline.summary)}</p>")
            rows = "".join(
                f"<tr{_SLOWEST if h.slowest else ''}>"
                f"<td {_CELL}>{escape(h.host)}</td><td {_NUM}>{escape(h.rate)}</td>"
                f"<td {_NUM}>{escape(h.stall)}</td><td {_CELL}>{escape(h.bottleneck)}</td>"
                f"<td {_CELL}>{escape(h.kind)}</td></tr>"
                for h in pipeline.hosts
            )
            parts.append(f"<table><tr><th {_CELL}>host</th><th {_NUM}>rate</th>"
                         f"<th {_NUM}>waiting for data</th><th {_CELL}>bottleneck</th>"
                         f"<th {_CELL}>bound by</th></tr>{rows}</table>")
            if pipeline.differences:
                rows = "".join(
                    f"<tr><td {_CELL}>{escape(d.subject)}</td><td {_CELL}>{escape(d.quantity)}"
                    f"</td>{''.join(f'<td {_NUM}>{escape(v)}</td>' for v in d.values)}</tr>"
                    for d in pipeline.differences
                )
                parts.append(f"<p>What differs on {escape(pipeline.slowest)}:</p><table><tr>"
                             f"<th {_CELL}>where</th><th {_CELL}>quantity</th>{head}</tr>"
                             f"{rows}</table>")
        parts.append("</div>")
        return "\n".join(parts)

    @property
    def table(self) -> pd.DataFrame:
        """One row per pipeline and host: rate, stall share, bottleneck, whether slowest."""
        from plumber.notebook.hosttables import hosts_frame

        return hosts_frame(self.comparison)

    @property
    def differences(self) -> pd.DataFrame:
        """What is worse on each pipeline's slowest host: one row per quantity, hosts as columns."""
        from plumber.notebook.hosttables import differences_frame

        return differences_frame(self.comparison)

    def report(self, path: str | Path) -> Path:
        """Write the multi-host HTML report; returns its path."""
        return write_hosts_html(path, self.comparison)


def compare_hosts(*profiles: HostProfile | Mapping[str, HostProfile]) -> HostsResult:
    """Compare the profiles of one data-parallel job's hosts, one profile per host.

    Each profile is a saved ``profile.json`` path, a ``Profile`` or a
    ``ProfileResult``: ``compare_hosts("host0.json", "host1.json")`` names
    the hosts by their files' names, and a profile not read from a file
    ``host<i>`` by its position. A single mapping names them by its keys:
    ``compare_hosts({"worker-a": result_a, "worker-b": result_b})``.
    Raises ValueError for fewer than two profiles and
    :class:`~plumber.analyzers.hosts.DifferentJobsError` for profiles of
    different jobs.
    """
    if len(profiles) == 1 and isinstance(profiles[0], Mapping):
        names, given = list(profiles[0]), list(profiles[0].values())
    else:
        given = list(profiles)
        paths = [p for p in given if isinstance(p, (str, os.PathLike))]
        from_files = iter(names_from_files(paths) if paths else ())
        names = [next(from_files) if isinstance(p, (str, os.PathLike)) else f"host{i}"
                 for i, p in enumerate(given)]
    return HostsResult(compare(names, [_record(p) for p in given]))


def _record(given: HostProfile) -> Profile:
    """The Profile record of a path, a Profile or a ProfileResult."""
    if isinstance(given, (str, os.PathLike)):
        return Profile.load(given)
    return given.profile if isinstance(given, ProfileResult) else given
