"""A tf.data pipeline whose map calls a planted slow Python function through tf.py_function.

The function spends its time on one line (marked PLANTED-...), so
``plumber profile --hotspots`` must name it, with that line, in the map's stage.
"""

import tensorflow as tf


def planted_py_function(x):
    total = 0
    for i in range(40000): total += i * i  # PLANTED-PY-FUNCTION  # noqa: E701
    return x + total % 2


def as_python(x):
    return tf.py_function(planted_py_function, [x], tf.int64)


if __name__ == "__main__":
    dataset = tf.data.Dataset.range(400).map(as_python, num_parallel_calls=2).batch(8)
    for _epoch in range(2):
        for _batch in dataset:
            pass
