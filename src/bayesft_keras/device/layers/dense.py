import keras
from keras import ops

from bayesft_keras.device.layers.device_layer import DeviceLayerMixin

_DEVICE_ARGS_DOC = """
        noise: a device noise model (`bayesft_keras.device.noise`), e.g.
            `LogNormalDrift(0.5)`, applied at inference as one fixed chip
            realization; None for an ideal device.
        bits: weight precision of the device; the kernel is fake-quantized
            to `2**bits - 1` symmetric levels in training and inference
            (straight-through gradient). None for full precision.
        per_channel: one quantization range per output channel (True) or
            one for the whole kernel (False).
        input_bits: DAC precision of the inputs (per-sample range), or None.
        output_bits: ADC precision of the crossbar outputs, before bias and
            activation (per-sample range), or None.
        noisy_bias: whether the bias drifts too, as every parameter does in
            the BayesFT authors' code.
        train_noise: apply fresh noise in every training step as well
            (noise-injection training). Off by default: training sees the
            quantized weights only.
        seed: seed of the training-time noise draws (and of the first read).
        periphery: a `bayesft_keras.device.periphery.Periphery`: tiles, ADC range
            and noise, global drift compensation; None for one ideal
            crossbar.
"""


@keras.saving.register_keras_serializable(package="bayesft_keras")
class ReRAMDense(DeviceLayerMixin, keras.layers.Dense):
    """`keras.layers.Dense` computed on a simulated ReRAM crossbar.

    Takes every argument of `keras.layers.Dense`, plus the device arguments.
    With `noise=None` (or noise switched off) and `bits=None` it computes
    exactly what `Dense` computes with the same weights.

    Args:
        units: dimensionality of the output space.""" + _DEVICE_ARGS_DOC + """
        **kwargs: the other arguments of `keras.layers.Dense`.

    Example:

    >>> layer = ReRAMDense(10, noise=LogNormalDrift(0.5), bits=4)
    """

    def __init__(
        self,
        units,
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
        super().__init__(units, **kwargs)
        self._init_device(
            noise, bits, per_channel, input_bits, output_bits, noisy_bias, train_noise, seed,
            periphery,
        )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_device()

    def call(self, inputs, training=None):
        x, seed, read_seeds = self._crossbar(inputs, ops.matmul, training)
        if self.bias is not None:
            x = ops.add(x, self._device_bias(self.bias, seed, read_seeds))
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(self._device_config())
        return config
