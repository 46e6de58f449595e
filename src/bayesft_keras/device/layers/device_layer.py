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

import random

import keras
from keras import ops

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import quantization
from bayesft_keras.device.seeds import SeedStream as _ChipSeedStream
from bayesft_keras.device.seeds import SEED_DTYPE


class ReadSeeds(keras.random.SeedGenerator):
    """A `SeedGenerator` on an existing int32 variable: a new seed for every draw of every pass.

    The variable is the layer's ``read_seed``: eager calls, ``model.predict``
    and compiled functions advance it; the drift evaluator maps it to a value
    per chip and batch (`keras.StatelessScope`).
    """

    def __init__(self, variable):  # pylint: disable=super-init-not-called
        self.state = variable
        self._initial_seed = 0  # read by the torch backend's dropout
        self.name = "read_seeds"

    def next(self, ordered=True):
        value = self.state.value
        self.state.assign(ops.add(value, ops.convert_to_tensor([0, 1], dtype="int32")))
        return ops.cast(value, SEED_DTYPE)


class DeviceState(keras.layers.Layer):
    """The state of one layer's simulated chip (no trainable weights).

    Args:
        params: initial values of the noise model's parameters.
        read_noise: whether the layer draws noise on every read (then it gets
            a ``read_seed`` variable).
        read_seed: initial value of ``read_seed[0]`` (None: random).

    Variables:
        chip_seed: the seed of the current noise realization, shape (2,).
        device_params: the noise model's parameters, shape (len(params),).
        noise_enabled: 1.0 applies the noise, 0.0 leaves weights clean.
        read_seed: the seed of the next read's noise, shape (2,) (with
            ``read_noise`` only).
    """

    def __init__(self, params=(), read_noise=False, read_seed=None, **kwargs):
        super().__init__(**kwargs)
        self.params = [float(p) for p in params]
        self.read_noise = bool(read_noise)
        self.initial_read_seed = read_seed

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
        if self.read_noise:
            start = self.initial_read_seed
            if start is None:
                start = random.randint(1, 2**30)
            self.read_seed = self.add_weight(
                name="read_seed",
                shape=(2,),
                dtype="int32",
                initializer=keras.initializers.Constant([int(start) & 0x3FFFFFFF, 0]),
                trainable=False,
            )
            self.read_seeds = ReadSeeds(self.read_seed)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["params"] = self.params
        config["read_noise"] = self.read_noise
        config["read_seed"] = self.initial_read_seed
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
        periphery=None,
    ):
        self.noise = noise_lib.get(noise)
        self.periphery = periphery_lib.get(periphery)
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

    @property
    def has_read_noise(self):
        """Whether a forward pass draws fresh noise (read noise of the devices, ADC noise)."""
        return bool(
            (self.noise is not None and self.noise.has_read_noise)
            or (self.periphery is not None and self.periphery.has_read_noise)
        )

    def _build_device(self):
        if self.noise is not None or self.has_read_noise:
            # A sub-layer, so that the parent Keras layer's own variable
            # serialization (kernel, bias) stays exactly as Keras defines it.
            self.device_state = DeviceState(
                self.noise.params() if self.noise is not None else (),
                read_noise=self.has_read_noise,
                read_seed=self.seed,
                name="device_state",
            )
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

    @property
    def read_seed(self):
        """The seed of the next read's noise (layers with read or ADC noise only)."""
        return self.device_state.read_seed

    # -- per-call weight derivation -------------------------------------------

    def _noise_seed(self, training):
        """The seed source for this call, or None when no noise applies."""
        if self.noise is None:
            return None
        if training:
            return self._train_seed_generator if self.train_noise else None
        return _ChipSeedStream(self.chip_seed)

    def _read_seeds(self, training):
        """The seed source of this pass's read noise, or None when none applies."""
        if not self.has_read_noise or (training and not self.train_noise):
            return None
        return ReadSeeds(self.device_state.read_seed)

    def _gained_params(self):
        gain = self.noise_enabled
        return [self.device_params[i] * gain for i in range(self.noise.num_params)]

    def _noisy(self, w, seed, programming=False):
        params = self._gained_params()
        if programming:
            params = self.noise.programming_params(params)
        out = self.noise.apply(w, seed, params)
        if not self.noise.exact_identity:
            # Through conductances and back is not bit-exact: switched off means untouched.
            out = ops.where(self.noise_enabled > 0, out, w)
        return out

    def _read(self, w, seeds):
        return self.noise.read(w, seeds, self._gained_params())

    def _device_kernel(self, kernel, seed):
        w = quantization.quantize_weight(
            kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        return w if seed is None else self._noisy(w, seed)

    def _device_bias(self, bias, seed, read_seeds=None):
        # A bias is one crossbar row: one range for the whole vector.
        b = quantization.quantize_weight(bias, self.bits, per_channel=False)
        if seed is None or not self.noisy_bias:
            return b
        b = self._noisy(b, seed)
        if read_seeds is not None and self.noise.has_read_noise:
            b = self._read(b, read_seeds)
        return b

    def _crossbar(self, inputs, op, training, channel_axis=-1, rows_per_input=1, tiled=True):
        """The crossbar's outputs before bias: DAC, chip, read noise, tiles and ADCs.

        Returns ``(outputs, seed, read_seeds)``; the bias takes the same seeds.
        """
        seed = self._noise_seed(training)
        read_seeds = self._read_seeds(training)
        inputs = quantization.quantize_activation(inputs, self.input_bits)
        target = quantization.quantize_weight(
            self.kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        chip = target if seed is None else self._noisy(target, seed)
        kernel = chip
        if read_seeds is not None and self.noise is not None and self.noise.has_read_noise:
            kernel = self._read(chip, read_seeds)
        if self.periphery is None:
            outputs = op(inputs, kernel)
            return quantization.quantize_activation(outputs, self.output_bits), seed, read_seeds
        reference = None
        if self.periphery.drift_compensation and seed is not None and not training:
            # The same chip right after programming: a fresh stream repeats its draws.
            reference = self._noisy(target, _ChipSeedStream(self.chip_seed), programming=True)
        periphery = self.periphery if tiled else periphery_lib.Periphery(
            out_noise=self.periphery.out_noise,
            out_bound=self.periphery.out_bound,
            drift_compensation=self.periphery.drift_compensation,
        )
        outputs = periphery.crossbar(
            inputs,
            kernel,
            op,
            target=target,
            channel_axis=channel_axis,
            rows_per_input=rows_per_input,
            output_bits=self.output_bits,
            seed=read_seeds,
            noise_gain=self.noise_enabled if hasattr(self, "device_state") else 1.0,
            chip=chip,
            reference=reference,
        )
        return outputs, seed, read_seeds

    def chip_kernel(self):
        """The kernel of the current chip: quantized, with its fixed noise, without read noise."""
        target = quantization.quantize_weight(
            self.kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        if self.noise is None:
            return target
        return self._noisy(target, _ChipSeedStream(self.chip_seed))

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
            "periphery": periphery_lib.serialize(self.periphery),
        }

    # Names of the variables that only the device state adds (not copied by
    # `convert` from a plain Keras layer).
    DEVICE_VARIABLES = ("chip_seed", "device_params", "noise_enabled", "read_seed")
