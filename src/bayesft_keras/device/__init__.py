"""The simulated ReRAM device: noise models, quantization, ReRAM layers, chip control and `convert`.

The bottom layer of the package: nothing here imports from the rest of `bayesft_keras`
but `bayesft_keras.utils`. Drift is sampled in `sampling`, seeds are derived in `seeds`.
"""

from bayesft_keras.device import seeds
from bayesft_keras.device import walk
from bayesft_keras.device import quantization
from bayesft_keras.device import sampling
from bayesft_keras.device import noise
from bayesft_keras.device import conductance
from bayesft_keras.device import physics
from bayesft_keras.device import periphery
from bayesft_keras.device import layers
from bayesft_keras.device import chip
from bayesft_keras.device import convert
from bayesft_keras.device import presets
