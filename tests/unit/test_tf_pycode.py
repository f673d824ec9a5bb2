"""Which code a tf.data stage's registered Python callable runs (plumber/tf/pycode.py)."""

from __future__ import annotations

import functools

from plumber.tf.pycode import _code_of


class Decoder:
    def __call__(self, x):
        return x


class JpegDecoder(Decoder):
    """Inherits ``__call__``: the code is the base class's."""


def decode(x):
    return x


def test_the_code_of_a_function_a_partial_and_callable_objects():
    assert _code_of(decode) is decode.__code__
    assert _code_of(functools.partial(decode)) is decode.__code__
    assert _code_of(Decoder()) is Decoder.__call__.__code__
    assert _code_of(JpegDecoder()) is Decoder.__call__.__code__
    assert _code_of(len) is None  # a builtin has no Python code
