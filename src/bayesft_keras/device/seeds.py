"""Every seed of the package is derived here: chips, layers, reads and draws.

From the outside in:

- `chip_seed_grid`: the chip seeds of a sweep, `[v, c]` from
  `SeedSequence([seed, v, c])` (`bayesft_keras.evaluation.evaluate_drift`).
- `layer_seeds`: a chip seed -> one independent seed pair per ReRAM layer
  (`SeedSequence([chip, i])`), what `bayesft_keras.device.chip.resample`
  assigns to the layers' `chip_seed` variables.
- `read_seed_base`: a layer's chip seed -> the first seed of its read noise
  (`ReadNoise`, ADC noise); batch `b` of a pass adds `[0, b * READ_STRIDE]`.
- `SeedStream`: a layer's seed pair -> the seeds of the successive
  `keras.random` draws of one forward pass, without state. A layer's chip is
  a pure function of its chip seed: every draw takes the next seed of the
  stream, so the same chip gives the same draws in every call and in every
  compiled trace, on every backend. The device physics models
  (`bayesft_keras.device.physics`) make several draws per tensor; `as_stream`
  gives them distinct seeds even when the caller passes a plain int.
"""

import hashlib

import keras
import numpy as np
from keras import ops

from bayesft_keras.utils import checks

# Seeds stay below 2**30 so that per-draw offsets never overflow int32.
SEED_MASK = 0x3FFFFFFF
# Read-noise seeds: the chip seed's first word scrambled (so that reads never
# repeat a chip draw), the second advanced by this much per batch.
_READ_SALT = 0x2545F491
READ_STRIDE = 4096

# The seed dtype `keras.random` expects on this backend (int64 on TensorFlow,
# uint32 on JAX, ...): read off a public `SeedGenerator`'s state once, at
# import, outside any traced function.
SEED_DTYPE = keras.random.SeedGenerator(0, name="seed_dtype_probe").state.dtype


def chip_seed_grid(seed, num_values, chips):
    """The chip seeds of a sweep: an int array of shape `(num_values, chips)`.

    Entry `[v, c]` is derived from `SeedSequence([seed, v, c])`, so chips
    are independent across values and across chips.
    """
    seed = checks.seed(seed)
    grid = np.empty((num_values, chips), dtype="int64")
    for v in range(num_values):
        for c in range(chips):
            grid[v, c] = np.random.SeedSequence([seed, v, c]).generate_state(1)[0] & SEED_MASK
    return grid


def trial_seed(seed, method, trial_id):
    """The seed of one trial's training and scoring: a function of `(seed, method, trial_id)` alone.

    So that a trial gives the same result whichever process runs it and whenever: in an
    uninterrupted search, after a resume, or on any worker of a distributed one.
    """
    digest = hashlib.sha256(f"{int(seed)}/{method}/{trial_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & SEED_MASK


def layer_seeds(seed, num_layers):
    """Independent per-layer chip seeds (int32 arrays of shape (2,)) derived from one chip seed."""
    seed = checks.seed(seed)
    return [
        (np.random.SeedSequence([seed, i]).generate_state(2) & SEED_MASK).astype("int32")
        for i in range(num_layers)
    ]


def read_seed_base(layer_seed):
    """The first read seed of a layer's chip (int32 array of shape (2,)); batch `b` adds `[0, b * READ_STRIDE]`."""
    layer_seed = np.asarray(layer_seed, dtype="int64")
    return np.stack(
        [(layer_seed[..., 0] ^ _READ_SALT) & SEED_MASK, layer_seed[..., 1] & SEED_MASK], axis=-1
    ).astype("int32")


class SeedStream(keras.random.SeedGenerator):
    """Seeds `base, base + [0, 1], base + [0, 2], ...` for one forward pass.

    `keras.random` asks a `SeedGenerator` for its next seed; this one derives
    them from `base` (an int32 tensor of shape (2,)) without advancing any
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
        return ops.cast(ops.add(self._base, offset), SEED_DTYPE)


def as_stream(seed):
    """`seed` as a source of distinct seeds: a `SeedGenerator` or None is kept, an int becomes a stream."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return SeedStream(ops.convert_to_tensor([seed & 0x7FFFFFFF, 0], dtype="int32"))
    return seed
