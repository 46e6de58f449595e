"""What every ReRAM layer shares: device precision, noise and the current chip.

A ReRAM layer keeps its trainable weights as the *programmed* (target) values and
never modifies them. Each forward pass derives the weights the crossbar computes
with: quantize to the device grid, then, at inference (or while training with
``train_noise=True``), apply the device noise model.

At inference the noise realization is one simulated *chip*: it is drawn from the
layer's ``chip_seed`` variable, so every batch sees the same realization until
the chip is resampled (`bayesft_keras.resample`). Noise parameters and an on/off
switch are variables too, so sweeps and clean evaluation never retrace or
rebuild a compiled model. Which draw a call makes, and from which seed, is
`bayesft_keras.device.sampling`'s.
"""

import keras

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import quantization
from bayesft_keras.device import sampling
from bayesft_keras.device.sampling import DeviceState
from bayesft_keras.device.seeds import SeedStream as _ChipSeedStream  # noqa: F401  (older imports)


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

    def _device_kernel(self, kernel, seed):
        w = quantization.quantize_weight(
            kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        return w if seed is None else sampling.sample_chip(self, w, seed)

    def _device_bias(self, bias, seed, read_seeds=None):
        # A bias is one crossbar row: one range for the whole vector.
        b = quantization.quantize_weight(bias, self.bits, per_channel=False)
        if seed is None or not self.noisy_bias:
            return b
        b = sampling.sample_chip(self, b, seed)
        if read_seeds is not None and self.noise.has_read_noise:
            b = sampling.sample_read(self, b, read_seeds)
        return b

    def _crossbar(self, inputs, op, training, channel_axis=-1, rows_per_input=1, tiled=True):
        """The crossbar's outputs before bias: DAC, chip, read noise, tiles and ADCs.

        Returns ``(outputs, seed, read_seeds)``; the bias takes the same seeds.
        """
        seed = sampling.chip_seeds(self, training)
        read_seeds = sampling.read_seeds(self, training)
        inputs = quantization.quantize_activation(inputs, self.input_bits)
        target = quantization.quantize_weight(
            self.kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        chip = target if seed is None else sampling.sample_chip(self, target, seed)
        kernel = chip
        if read_seeds is not None and self.noise is not None and self.noise.has_read_noise:
            kernel = sampling.sample_read(self, chip, read_seeds)
        if self.periphery is None:
            outputs = op(inputs, kernel)
            return quantization.quantize_activation(outputs, self.output_bits), seed, read_seeds
        reference = None
        if self.periphery.drift_compensation and seed is not None and not training:
            # The same chip right after programming: a fresh stream repeats its draws.
            reference = sampling.sample_chip(self, target, sampling.chip_seeds(self, False), programming=True)
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
        return sampling.sample_chip(self, target, sampling.chip_seeds(self, False))

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
