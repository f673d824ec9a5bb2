"""A tf.data pipeline whose stages run planted slow Python functions: a from_generator
source, a map through tf.py_function, a map through tf.numpy_function, and a map of a
transform object whose py_function body is defined inside its ``__call__``.

Each function spends its time on one line (marked PLANTED-...) and returns
without a TF op of its own, so ``plumber profile --hotspots`` must name it,
with that line, in its stage.
"""

import tensorflow as tf


def planted_generator():
    for n in range(240):
        total = 0
        for i in range(20000): total += i * i  # PLANTED-GENERATOR  # noqa: E701
        yield n


def planted_py_function(x):
    total = 0
    for i in range(40000): total += i * i  # PLANTED-PY-FUNCTION  # noqa: E701
    return x


def planted_numpy_function(x):
    total = 0
    for i in range(30000): total += i * i  # PLANTED-NUMPY-FUNCTION  # noqa: E701
    return x


class NestedBody:
    """A transform object with its py_function body inside, as public code often writes it:
    AutoGraph converts the body with ``__call__``, so it runs as generated code in a file of
    its own, and the hotspots must still name this file's line."""

    def __call__(self, x):
        def planted_nested(v):
            return v + 0 * sum(i * i for i in range(30000))  # PLANTED-NESTED

        return tf.py_function(planted_nested, [x], tf.int64)


def as_python(x):
    return tf.py_function(planted_py_function, [x], tf.int64)


def as_numpy(x):
    return tf.numpy_function(planted_numpy_function, [x], tf.int64)


if __name__ == "__main__":
    dataset = (
        tf.data.Dataset.from_generator(planted_generator,
                                       output_signature=tf.TensorSpec((), tf.int64))
        .map(as_python, num_parallel_calls=2)
        .map(as_numpy)
        .map(NestedBody())
        .batch(8)
    )
    for _epoch in range(2):
        for _batch in dataset:
            pass
