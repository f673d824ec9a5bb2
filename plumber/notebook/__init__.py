"""The notebook API: ``plumber.profile(dataset)`` and the ``%%plumber`` cell magic.

``profile`` iterates a tf.data pipeline under plumber's instrumentation and
returns a :class:`ProfileResult`: the Profile record with its analysis, a
rich Jupyter display, DataFrames (pandas) and charts (matplotlib). The
``notebook`` extra installs pandas, matplotlib and IPython; nothing here
imports them until a method needs them.
"""

from plumber.notebook.hosts import HostsResult, compare_hosts
from plumber.notebook.result import ProfileResult, Recommendations
from plumber.notebook.run import DEFAULT_DURATION_S, profile

__all__ = ["DEFAULT_DURATION_S", "HostsResult", "ProfileResult", "Recommendations",
           "compare_hosts", "profile"]
