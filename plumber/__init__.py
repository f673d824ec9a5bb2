"""plumber: find and remove the bottlenecks of ML input pipelines.

``import plumber`` is cheap and needs neither TensorFlow nor PyTorch: the
framework adapters are imported only when a pipeline of theirs is profiled.
The notebook API (``plumber.profile``, ``plumber.ProfileResult``,
``plumber.compare_hosts``) and
``plumber.optimize`` are loaded on first use, and ``%load_ext plumber``
registers the ``%%plumber`` cell magic.
"""

from typing import Any

from plumber.records.version import __version__

#: Attributes loaded from :mod:`plumber.notebook` on first access.
_NOTEBOOK_API = ("profile", "ProfileResult", "compare_hosts", "HostsResult")

__all__ = ["HostsResult", "ProfileResult", "__version__", "compare_hosts",
           "load_ipython_extension", "optimize", "profile"]


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK_API:
        from plumber import notebook

        return getattr(notebook, name)
    if name == "optimize":
        from plumber.tuner.optimize import optimize

        return optimize
    raise AttributeError(f"module 'plumber' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext plumber``: register the ``%%plumber`` cell magic."""
    from plumber.notebook.magic import load_ipython_extension as load

    load(ipython)
