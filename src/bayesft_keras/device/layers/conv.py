"""`ReRAMConv1D` and `ReRAMConv2D`: Keras convolutions on a simulated ReRAM crossbar."""

import math

import keras
from keras import ops

from bayesft_keras.device.layers.device_layer import DEVICE_ARGS_DOC
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin
from bayesft_keras.device.layers.device_layer import pop_device_args


class _ReRAMConvMixin(DeviceLayerMixin):
    """Forward pass shared by ReRAM 1D/2D convolutions (mirrors `BaseConv.call`)."""

    def __init__(self, filters, kernel_size, **kwargs):
        device = pop_device_args(kwargs)
        super().__init__(filters, kernel_size, **kwargs)
        self._init_device(device)

    def call(self, inputs, training=None):
        padding = self.padding
        pad = None
        if padding == "causal":  # Conv1D only
            pad = self._compute_causal_padding()
            padding = "valid"

        def op(x, kernel):
            if pad is not None:
                x = ops.pad(x, pad)
            return ops.conv(
                x,
                kernel,
                strides=list(self.strides),
                padding=padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )

        if self.periphery is not None and self.periphery.tile_size is not None and self.groups != 1:
            raise ValueError(
                f"Layer {self.name!r}: tiles (`periphery.tile_size`) need `groups=1`. "
                f"Received: groups={self.groups}"
            )
        outputs, seed, read_seeds = self._crossbar(
            inputs,
            op,
            training,
            channel_axis=self._channel_axis,
            rows_per_input=math.prod(self.kernel_size),
        )
        return self._add_conv_bias(outputs, seed, read_seeds, self.filters)


def _conv_doc(parent, rank):
    dims = ", ".join(["steps"] if rank == 1 else [f"dim{i + 1}" for i in range(rank)])
    new_dims = ", ".join(["new_steps"] if rank == 1 else [f"new_dim{i + 1}" for i in range(rank)])
    return (
        f"""`keras.layers.{parent}` computed on a simulated ReRAM crossbar.

    Takes every argument of `keras.layers.{parent}`, plus the device
    arguments. With `noise=None` (or noise switched off) and `bits=None` it
    computes exactly what `{parent}` computes with the same weights.

    Args:
        filters: number of output channels.
        kernel_size: size of the convolution window."""
        + DEVICE_ARGS_DOC
        + f"""
        **kwargs: the other arguments of `keras.layers.{parent}`.

    Input shape:
        {rank + 2}D tensor with shape `(batch_size, {dims}, channels)` if
        `data_format="channels_last"`, or `(batch_size, channels, {dims})` if
        `data_format="channels_first"`.

    Output shape:
        {rank + 2}D tensor with shape `(batch_size, {new_dims}, filters)` if
        `data_format="channels_last"`, or `(batch_size, filters, {new_dims})`
        if `data_format="channels_first"`.
    """
    )


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMConv1D(_ReRAMConvMixin, keras.layers.Conv1D):
    __doc__ = _conv_doc("Conv1D", 1)


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMConv2D(_ReRAMConvMixin, keras.layers.Conv2D):
    __doc__ = _conv_doc("Conv2D", 2)
