"""`ReRAMDense`: `keras.layers.Dense` on a simulated ReRAM crossbar."""

import keras
from keras import ops

from bayesft_keras.device.layers.device_layer import DEVICE_ARGS_DOC
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin
from bayesft_keras.device.layers.device_layer import pop_device_args


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMDense(DeviceLayerMixin, keras.layers.Dense):
    __doc__ = (
        """`keras.layers.Dense` computed on a simulated ReRAM crossbar.

    Takes every argument of `keras.layers.Dense`, plus the device arguments.
    With `noise=None` (or noise switched off) and `bits=None` it computes
    exactly what `Dense` computes with the same weights.

    Args:
        units: dimensionality of the output space."""
        + DEVICE_ARGS_DOC
        + """
        **kwargs: the other arguments of `keras.layers.Dense`.

    Input shape:
        N-D tensor with shape: `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor with shape: `(batch_size, ..., units)`.

    Example:

    >>> layer = ReRAMDense(10, noise=LogNormalDrift(0.5), bits=4)
    """
    )

    def __init__(self, units, **kwargs):
        device = pop_device_args(kwargs)
        super().__init__(units, **kwargs)
        self._init_device(device)

    def call(self, inputs, training=None):
        x, seed, read_seeds = self._crossbar(inputs, ops.matmul, training)
        if self.bias is not None:
            x = ops.add(x, self._device_bias(self.bias, seed, read_seeds))
        if self.activation is not None:
            x = self.activation(x)
        return x
