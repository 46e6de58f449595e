import keras
from keras import ops

from bayesft_keras.device.layers.dense import _DEVICE_ARGS_DOC
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMDepthwiseConv2D(DeviceLayerMixin, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` computed on a simulated ReRAM crossbar.

    Takes every argument of `keras.layers.DepthwiseConv2D`, plus the device
    arguments. An output channel is one (input channel, multiplier) pair, so
    per-channel quantization uses one range per pair.

    Args:
        kernel_size: size of the depthwise window.""" + _DEVICE_ARGS_DOC + """
        **kwargs: the other arguments of `keras.layers.DepthwiseConv2D`.
    """

    _kernel_channel_axes = (-2, -1)

    def __init__(
        self,
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
        super().__init__(kernel_size, **kwargs)
        self._init_device(
            noise, bits, per_channel, input_bits, output_bits, noisy_bias, train_noise, seed,
            periphery,
        )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_device()

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
            inputs, op, training, channel_axis=-1 if self.data_format == "channels_last" else 1, tiled=False
        )
        if self.use_bias:
            channels = self.depth_multiplier * input_channel
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (channels,)
            else:
                bias_shape = (1, channels) + (1,) * self.rank
            bias = ops.reshape(self._device_bias(self.bias, seed, read_seeds), bias_shape)
            outputs = ops.add(outputs, bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(self._device_config())
        return config
