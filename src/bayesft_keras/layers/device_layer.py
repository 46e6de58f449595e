"""What every ReRAM layer shares: device precision, noise and the current chip.

A ReRAM layer keeps its trainable weights as the *programmed* (target) values and
never modifies them. Each forward pass derives the weights the crossbar computes
with: quantize to the device grid, then, at inference (or while training with
``train_noise=True``), apply the device noise model.

At inference the noise realization is one simulated *chip*: it is drawn from the
layer's ``chip_seed`` variable, so every batch sees the same realization until
the chip is resampled (`bayesft_keras.resample`). Noise parameters and an on/off
switch are variables too, so sweeps and clean evaluation never retrace or
rebuild a compiled model.
"""

import keras
from keras import ops

from bayesft_keras import noise as noise_lib
from bayesft_keras import quantization

try:  # Private in Keras 3; used only to match each backend's seed dtype.
    from keras.src.backend import random_seed_dtype as _random_seed_dtype
except ImportError:  # pragma: no cover
    def _random_seed_dtype():
        return "uint32" if keras.backend.backend() == "jax" else "int32"


class _ChipSeedStream(keras.random.SeedGenerator):
    """Seeds ``base, base + [0, 1], base + [0, 2], ...`` for one forward pass.

    `keras.random` asks a `SeedGenerator` for its next seed; this one derives
    them from the chip seed without advancing any state, so the same chip gives
    the same draws in every call (and in every compiled trace).
    """

    def __init__(self, base):  # pylint: disable=super-init-not-called
        self._base = base
        self._count = 0
        self._initial_seed = 0  # read by the torch backend's dropout
        self.name = "chip_seed_stream"

    def next(self, ordered=True):
        offset = ops.convert_to_tensor([0, self._count], dtype="int32")
        self._count += 1
        return ops.cast(ops.add(self._base, offset), _random_seed_dtype())


class DeviceState(keras.layers.Layer):
    """The state of one layer's simulated chip (no trainable weights).

    Args:
        params: initial values of the noise model's parameters.

    Variables:
        chip_seed: the seed of the current noise realization, shape (2,).
        device_params: the noise model's parameters, shape (len(params),).
        noise_enabled: 1.0 applies the noise, 0.0 leaves weights clean.
    """

    def __init__(self, params=(), **kwargs):
        super().__init__(**kwargs)
        self.params = [float(p) for p in params]

    def build(self, input_shape=None):
        self.chip_seed = self.add_weight(
            name="chip_seed", shape=(2,), dtype="int32", initializer="zeros", trainable=False
        )
        self.device_params = self.add_weight(
            name="device_params",
            shape=(len(self.params),),
            dtype="float32",
            initializer=keras.initializers.Constant(self.params) if self.params else "zeros",
            trainable=False,
            autocast=False,
        )
        self.noise_enabled = self.add_weight(
            name="noise_enabled",
            shape=(),
            dtype="float32",
            initializer="ones",
            trainable=False,
            autocast=False,
        )
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["params"] = self.params
        return config


class DeviceLayerMixin:
    """Adds ReRAM device behaviour to a Keras layer with a kernel (and bias).

    Subclasses call `_init_device` in ``__init__``, `_build_device` at the end
    of ``build``, and obtain the weights to compute with from
    `_device_kernel` / `_device_bias`.
    """

    # Axes of the kernel that index output channels (per-channel quantization).
    _kernel_channel_axes = (-1,)

    def _init_device(
        self,
        noise=None,
        bits=None,
        per_channel=True,
        input_bits=None,
        output_bits=None,
        noisy_bias=True,
        train_noise=False,
        seed=None,
    ):
        self.noise = noise_lib.get(noise)
        self.bits = quantization.validate_bits(bits, "bits")
        self.input_bits = quantization.validate_bits(input_bits, "input_bits")
        self.output_bits = quantization.validate_bits(output_bits, "output_bits")
        for name, value in (
            ("per_channel", per_channel),
            ("noisy_bias", noisy_bias),
            ("train_noise", train_noise),
        ):
            if not isinstance(value, bool):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={value!r}"
                )
        if train_noise and self.noise is None:
            raise ValueError(
                "`train_noise=True` needs a device noise model. Received: noise=None"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.per_channel = per_channel
        self.noisy_bias = noisy_bias
        self.train_noise = train_noise
        self.seed = seed
        # Fresh draws for every training step when training with noise.
        self._train_seed_generator = (
            keras.random.SeedGenerator(seed) if train_noise else None
        )

    def _build_device(self):
        if self.noise is not None:
            # A sub-layer, so that the parent Keras layer's own variable
            # serialization (kernel, bias) stays exactly as Keras defines it.
            self.device_state = DeviceState(self.noise.params(), name="device_state")
            self.device_state.build()

    @property
    def chip_seed(self):
        return self.device_state.chip_seed

    @property
    def device_params(self):
        return self.device_state.device_params

    @property
    def noise_enabled(self):
        return self.device_state.noise_enabled

    # -- per-call weight derivation -------------------------------------------

    def _noise_seed(self, training):
        """The seed source for this call, or None when no noise applies."""
        if self.noise is None:
            return None
        if training:
            return self._train_seed_generator if self.train_noise else None
        return _ChipSeedStream(self.chip_seed)

    def _noisy(self, w, seed):
        gain = self.noise_enabled
        params = [self.device_params[i] * gain for i in range(self.noise.num_params)]
        return self.noise.apply(w, seed, params)

    def _device_kernel(self, kernel, seed):
        w = quantization.quantize_weight(
            kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        return w if seed is None else self._noisy(w, seed)

    def _device_bias(self, bias, seed):
        # A bias is one crossbar row: one range for the whole vector.
        b = quantization.quantize_weight(bias, self.bits, per_channel=False)
        if seed is None or not self.noisy_bias:
            return b
        return self._noisy(b, seed)

    def _device_config(self):
        return {
            "noise": noise_lib.serialize(self.noise),
            "bits": self.bits,
            "per_channel": self.per_channel,
            "input_bits": self.input_bits,
            "output_bits": self.output_bits,
            "noisy_bias": self.noisy_bias,
            "train_noise": self.train_noise,
            "seed": self.seed,
        }

    # Names of the variables that only the device state adds (not copied by
    # `convert` from a plain Keras layer).
    DEVICE_VARIABLES = ("chip_seed", "device_params", "noise_enabled")
