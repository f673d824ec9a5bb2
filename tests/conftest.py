"""One import order for the whole suite: torchvision before TensorFlow.

The suite runs tf.data and torch tests in one process. On this torch build,
importing torchvision after TensorFlow crashes the process (inside triton's
import), while the other order works; profiled scripts are not affected
(each framework is loaded only by a script that imports it).
"""

import importlib.util

if importlib.util.find_spec("torchvision") is not None:
    import torchvision  # noqa: F401
