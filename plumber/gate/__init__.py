"""CI performance gate: fail a build when an input pipeline gets slower.

``plumber gate`` (see :mod:`plumber.commands.gate`) and
:func:`assert_throughput` (for a user's own tests) run a script a few times,
take medians, calibrate the machine, and compare with a committed baseline.
Pure logic (baseline file, comparison, Markdown, JUnit XML) is separate
from the part that runs scripts (:mod:`plumber.gate.runner`).
"""

from plumber.gate.api import DEFAULT_TOLERANCE, assert_throughput, check, measure, record
from plumber.gate.baseline import BaselineError
from plumber.gate.runner import RunOptions, ScriptFailed

__all__ = [
    "DEFAULT_TOLERANCE",
    "BaselineError",
    "RunOptions",
    "ScriptFailed",
    "assert_throughput",
    "check",
    "measure",
    "record",
]
