"""plumber: find and remove the bottlenecks of ML input pipelines.

``import plumber`` is cheap and needs neither TensorFlow nor PyTorch: the
framework adapters are imported only when a pipeline of theirs is profiled.
"""

__version__ = "0.1.0"
