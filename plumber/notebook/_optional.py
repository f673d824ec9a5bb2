"""Import the notebook extra's libraries only where they are used, with a clear error.

pandas and matplotlib are optional: ``import plumber`` and ``plumber.profile``
work without them, and only the DataFrame and chart methods need them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'plumber-pipelines[notebook]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise ImportError naming the ``notebook`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.partition(".")[0]
        raise ImportError(
            f"{purpose} needs {top}, which is not installed: it comes with plumber's "
            f"'notebook' extra ({INSTALL_HINT})"
        ) from exc
