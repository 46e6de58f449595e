import keras
import numpy as np
from keras import ops

from bayesft_keras.device.layers.dense import _DEVICE_ARGS_DOC
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin


class _ReRAMConvMixin(DeviceLayerMixin):
    """Forward pass shared by ReRAM 1D/2D convolutions (mirrors `BaseConv.call`)."""

    def __init__(
        self,
        filters,
        kernel_size,
        noise=None,
        bits=None,
        per_channel=True,
        input_bits=None,
        output_bits=None,
        noisy_bias=True,
        train_noise=False,
        seed=None,
        periphery=None,
        **kwargs,
    ):
        super().__init__(filters, kernel_size, **kwargs)
        self._init_device(
            noise, bits, per_channel, input_bits, output_bits, noisy_bias, train_noise, seed,
            periphery,
        )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_device()

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
            channel_axis=-1 if self.data_format == "channels_last" else 1,
            rows_per_input=int(np.prod(self.kernel_size)),
        )
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            bias = ops.reshape(self._device_bias(self.bias, seed, read_seeds), bias_shape)
            outputs = ops.add(outputs, bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(self._device_config())
        return config


def _conv_doc(parent):
    return (
        f"""`keras.layers.{parent}` computed on a simulated ReRAM crossbar.

    Takes every argument of `keras.layers.{parent}`, plus the device
    arguments. With `noise=None` (or noise switched off) and `bits=None` it
    computes exactly what `{parent}` computes with the same weights.

    Args:
        filters: number of output channels.
        kernel_size: size of the convolution window."""
        + _DEVICE_ARGS_DOC
        + f"""        **kwargs: the other arguments of `keras.layers.{parent}`.
    """
    )


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMConv1D(_ReRAMConvMixin, keras.layers.Conv1D):
    __doc__ = _conv_doc("Conv1D")


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMConv2D(_ReRAMConvMixin, keras.layers.Conv2D):
    __doc__ = _conv_doc("Conv2D")
