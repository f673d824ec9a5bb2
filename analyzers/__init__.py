"""The operational analysis of input pipelines (README.md, How it works, step 5).

Pure functions of a :class:`plumber.records.profile.Profile`: no I/O, no framework
imports. Entry points are :func:`plumber.analyzers.diagnose.diagnose` and
:func:`plumber.analyzers.diagnose.diagnose_all`; the values they return are
in :mod:`plumber.analyzers.results`. The modules, in the order the analysis
uses them: ``observed`` (run-wide measurements), ``topology`` (how stages
connect), ``stages`` (per-stage quantities), ``bounds``, ``verdict``,
``whatif`` and ``cache`` (predicted changes), ``recommend``, ``text``.
"""
