import keras
from keras import ops

from bayesft_keras import quantization
from bayesft_keras.layers.dense import _DEVICE_ARGS_DOC
from bayesft_keras.layers.device_layer import DeviceLayerMixin


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
        **kwargs,
    ):
        super().__init__(filters, kernel_size, **kwargs)
        self._init_device(
            noise, bits, per_channel, input_bits, output_bits, noisy_bias, train_noise, seed
        )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_device()

    def call(self, inputs, training=None):
        seed = self._noise_seed(training)
        inputs = quantization.quantize_activation(inputs, self.input_bits)
        padding = self.padding
        if padding == "causal":  # Conv1D only
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        outputs = ops.conv(
            inputs,
            self._device_kernel(self.kernel, seed),
            strides=list(self.strides),
            padding=padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        outputs = quantization.quantize_activation(outputs, self.output_bits)
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            bias = ops.reshape(self._device_bias(self.bias, seed), bias_shape)
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
