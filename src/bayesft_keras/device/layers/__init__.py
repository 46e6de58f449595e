"""Drop-in Keras layers that simulate a ReRAM crossbar."""

import keras

from bayesft_keras.device.layers.conv import ReRAMConv1D
from bayesft_keras.device.layers.conv import ReRAMConv2D
from bayesft_keras.device.layers.dense import ReRAMDense
from bayesft_keras.device.layers.depthwise_conv import ReRAMDepthwiseConv2D
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin

# Plain Keras layer class -> its ReRAM counterpart (used by `convert`).
REPLACEMENTS = {
    keras.layers.Dense: ReRAMDense,
    keras.layers.Conv1D: ReRAMConv1D,
    keras.layers.Conv2D: ReRAMConv2D,
    keras.layers.DepthwiseConv2D: ReRAMDepthwiseConv2D,
}

__all__ = [
    "DeviceLayerMixin",
    "ReRAMConv1D",
    "ReRAMConv2D",
    "ReRAMDense",
    "ReRAMDepthwiseConv2D",
    "REPLACEMENTS",
]
