"""`ReRAMDepthwiseConv2D`: `keras.layers.DepthwiseConv2D` on a simulated ReRAM crossbar."""

import keras
from keras import ops

from bayesft_keras.device.layers.device_layer import DEVICE_ARGS_DOC
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin
from bayesft_keras.device.layers.device_layer import pop_device_args


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMDepthwiseConv2D(DeviceLayerMixin, keras.layers.DepthwiseConv2D):
    __doc__ = (
        """`keras.layers.DepthwiseConv2D` computed on a simulated ReRAM crossbar.

    Takes every argument of `keras.layers.DepthwiseConv2D`, plus the device
    arguments. An output channel is one (input channel, multiplier) pair, so
    per-channel quantization uses one range per pair.

    Args:
        kernel_size: size of the depthwise window."""
        + DEVICE_ARGS_DOC
        + """
        **kwargs: the other arguments of `keras.layers.DepthwiseConv2D`.

    Input shape:
        4D tensor with shape `(batch_size, height, width, channels)` if
        `data_format="channels_last"`, or `(batch_size, channels, height, width)`
        if `data_format="channels_first"`.

    Output shape:
        4D tensor with shape
        `(batch_size, new_height, new_width, channels * depth_multiplier)` if
        `data_format="channels_last"`, or
        `(batch_size, channels * depth_multiplier, new_height, new_width)` if
        `data_format="channels_first"`.
    """
    )

    _kernel_channel_axes = (-2, -1)

    def __init__(self, kernel_size, **kwargs):
        device = pop_device_args(kwargs)
        super().__init__(kernel_size, **kwargs)
        self._init_device(device)

    def call(self, inputs, training=None):
        input_channel = self._get_input_channel(inputs.shape)

        def op(x, kernel):
            return ops.depthwise_conv(
                x,
                kernel,
                strides=self.strides,
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )

        # A depthwise kernel is block-diagonal on a crossbar: not split into tiles.
        outputs, seed, read_seeds = self._crossbar(
            inputs, op, training, channel_axis=self._channel_axis, tiled=False
        )
        return self._add_conv_bias(outputs, seed, read_seeds, self.depth_multiplier * input_channel)
