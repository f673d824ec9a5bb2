"""The object a notebook gets back: a Profile with its analysis, ready to look at.

The :class:`~plumber.records.profile.Profile` stays the plain immutable record that
every layer shares; :class:`ProfileResult` wraps it with the diagnoses and
the notebook conveniences: a rich display, DataFrames, charts, and saving.
pandas and matplotlib are imported only by the methods that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from plumber.analyzers.diagnose import diagnose_all
from plumber.analyzers.results import Diagnosis, Recommendation
from plumber.notebook.summary import recommendations_html, result_html
from plumber.records.profile import Profile
from plumber.reports import format as fmt
from plumber.reports.terminal import render_summary
from plumber.reports.view import describe_bottleneck, diagnosis_for

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


class Recommendations(tuple[Recommendation, ...]):
    """The recommended changes, best first, shown as a list in Jupyter."""

    def _repr_html_(self) -> str:
        return recommendations_html(self, limit=None)


class ProfileResult:
    """A profiled run and its analysis: ``.profile`` (the record), ``.diagnoses``.

    Build one from any Profile, e.g. a saved one:
    ``ProfileResult(Profile.load("profile.json"))``.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.diagnoses: tuple[Diagnosis, ...] = tuple(diagnose_all(profile))

    @classmethod
    def load(cls, path: str | Path) -> ProfileResult:
        """The result of a saved ``profile.json`` (from ``plumber profile`` or ``save``)."""
        return cls(Profile.load(path))

    # -- display -----------------------------------------------------------
    def _repr_html_(self) -> str:
        return result_html(self.profile, self.diagnoses)

    def __repr__(self) -> str:
        parts = []
        for pipeline in self.profile.pipelines:
            diagnosis = diagnosis_for(pipeline, self.diagnoses)
            if diagnosis is not None:
                parts.append(
                    f"{pipeline.id}: bottleneck {describe_bottleneck(pipeline, diagnosis)}, "
                    f"{fmt.rate(diagnosis.observed_rate)} observed"
                )
        return f"<ProfileResult {'; '.join(parts) or 'no pipeline observed'}>"

    def __str__(self) -> str:
        """The same summary ``plumber profile`` prints, with the run's notes."""
        notes = "".join(f"note: {n}\n" for n in self.profile.run.notes)
        return render_summary(self.profile, self.diagnoses) + notes

    # -- tables ------------------------------------------------------------
    @property
    def stages(self) -> pd.DataFrame:
        """One row per stage: what it is, where it was written, its demands and max rate."""
        from plumber.notebook.tables import stages_frame

        return stages_frame(self.profile, self.diagnoses)

    @property
    def hotspots(self) -> pd.DataFrame:
        """Each stage's top Python functions (``hotspots=True``): file, line, shares, library."""
        from plumber.notebook.hotspottable import hotspots_frame

        return hotspots_frame(self.profile)

    @property
    def resources(self) -> pd.DataFrame:
        """The resource samples over time, indexed by seconds since the run started."""
        from plumber.notebook.tables import resources_frame

        return resources_frame(self.profile.resources)

    @property
    def what_if(self) -> pd.DataFrame:
        """Every change the model evaluated, with its predicted rate and speedup."""
        from plumber.notebook.tables import what_if_frame

        return what_if_frame(self.diagnoses)

    @property
    def bounds(self) -> pd.DataFrame:
        """The upper bounds on each pipeline's rate; ``binding`` marks the bottleneck."""
        from plumber.notebook.tables import bounds_frame

        return bounds_frame(self.diagnoses)

    # -- charts ------------------------------------------------------------
    def plot_bounds(self) -> Figure:
        """A bar chart of each pipeline's bounds against its observed rate."""
        from plumber.notebook.charts import bounds_figure

        return bounds_figure(self.profile, self.diagnoses)

    def plot_resources(self) -> Figure:
        """CPU, I/O and memory over the run."""
        from plumber.notebook.charts import resources_figure

        return resources_figure(self.profile)

    # -- actions -----------------------------------------------------------
    def recommend(self) -> Recommendations:
        """The changes worth making, each tied to the source line to edit."""
        return Recommendations(r for d in self.diagnoses for r in d.recommendations)

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON (``plumber report`` re-renders it); returns the path."""
        return self.profile.save(path)

    def report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report; returns its path."""
        from plumber.reports.outputs import render

        return render(self.profile, Path(path), profile_path=None).report_path
