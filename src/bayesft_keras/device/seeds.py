"""Seed streams: many independent `keras.random` draws from one fixed seed, without state.

A layer's chip is a pure function of its chip seed: every draw of one forward
pass takes the next seed of a `SeedStream` built on that chip seed, so the same
chip gives the same draws in every call and in every compiled trace, on every
backend. The device physics models (`bayesft_keras.device.physics`) make several
draws per tensor (programming noise, drift coefficients, ...); `as_stream`
gives them distinct seeds even when the caller passes a plain int.
"""

import keras
from keras import ops

try:  # Private in Keras 3; used only to match each backend's seed dtype.
    from keras.src.backend import random_seed_dtype as _random_seed_dtype
except ImportError:  # pragma: no cover
    def _random_seed_dtype():
        return "uint32" if keras.backend.backend() == "jax" else "int32"


class SeedStream(keras.random.SeedGenerator):
    """Seeds ``base, base + [0, 1], base + [0, 2], ...`` for one forward pass.

    `keras.random` asks a `SeedGenerator` for its next seed; this one derives
    them from ``base`` (an int32 tensor of shape (2,)) without advancing any
    variable.
    """

    def __init__(self, base):  # pylint: disable=super-init-not-called
        self._base = base
        self._count = 0
        self._initial_seed = 0  # read by the torch backend's dropout
        self.name = "seed_stream"

    def next(self, ordered=True):
        offset = ops.convert_to_tensor([0, self._count], dtype="int32")
        self._count += 1
        return ops.cast(ops.add(self._base, offset), _random_seed_dtype())


def as_stream(seed):
    """``seed`` as a source of distinct seeds: a `SeedGenerator` or None is kept, an int becomes a stream."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return SeedStream(ops.convert_to_tensor([seed & 0x7FFFFFFF, 0], dtype="int32"))
    return seed
