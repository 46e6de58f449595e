"""`TorchAdam` and `one_cycle_adam`: they live in `bayesft_keras.tuning.recipe`, with the rest of the
training recipe; this module keeps their old import path."""

from bayesft_keras.tuning.recipe import TorchAdam  # noqa: F401
from bayesft_keras.tuning.recipe import one_cycle_adam  # noqa: F401
