"""What every ReRAM layer shares: device precision, noise and the current chip.

A ReRAM layer keeps its trainable weights as the *programmed* (target) values and
never modifies them. Each forward pass derives the weights the crossbar computes
with: quantize to the device grid, then, at inference (or while training with
`train_noise=True`), apply the device noise model.

At inference the noise realization is one simulated *chip*: it is drawn from the
layer's `chip_seed` variable, so every batch sees the same realization until
the chip is resampled (`bayesft_keras.resample`). Noise parameters and an on/off
switch are variables too, so sweeps and clean evaluation never retrace or
rebuild a compiled model. Which draw a call makes, and from which seed, is
`bayesft_keras.device.sampling`'s.
"""

import keras
from keras import ops

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import quantization
from bayesft_keras.device import sampling
from bayesft_keras.device.sampling import DeviceState
from bayesft_keras.device.seeds import SeedStream as _ChipSeedStream  # noqa: F401  (older imports)
from bayesft_keras.utils import checks


# The device arguments of every ReRAM layer (and of `convert`), with their defaults.
DEVICE_ARGS = {
    "noise": None,
    "bits": None,
    "per_channel": True,
    "input_bits": None,
    "output_bits": None,
    "noisy_bias": True,
    "train_noise": False,
    "seed": None,
    "periphery": None,
}

# Their documentation, shared by the layers' docstrings.
DEVICE_ARGS_DOC = """
        noise: a device noise model (`bayesft_keras.device.noise`), e.g.
            `LogNormalDrift(0.5)`, applied at inference as one fixed chip
            realization; `None` for an ideal device.
        bits: weight precision of the device; the kernel is fake-quantized
            to `2**bits - 1` symmetric levels in training and inference
            (straight-through gradient). `None` for full precision.
        per_channel: one quantization range per output channel (`True`) or
            one for the whole kernel (`False`).
        input_bits: DAC precision of the inputs (per-sample range), or `None`.
        output_bits: ADC precision of the crossbar outputs, before bias and
            activation (per-sample range), or `None`.
        noisy_bias: whether the bias drifts too, as every parameter does in
            the BayesFT authors' code.
        train_noise: apply fresh noise in every training step as well
            (noise-injection training). Off by default: training sees the
            quantized weights only.
        seed: seed of the training-time noise draws (and of the first read).
        periphery: a `bayesft_keras.device.periphery.Periphery`: tiles, ADC
            range and noise, global drift compensation; `None` for one ideal
            crossbar."""


def pop_device_args(kwargs):
    """Removes the device arguments from a layer's `kwargs`; returns them, defaults filled in."""
    return {name: kwargs.pop(name, default) for name, default in DEVICE_ARGS.items()}


def _state_variable(name, doc):
    return property(lambda layer: getattr(layer.device_state, name), doc=doc)


class DeviceLayerMixin:
    """Adds ReRAM device behaviour to a Keras layer with a kernel (and bias).

    A subclass's `__init__` takes the device arguments out of its kwargs
    (`pop_device_args`), calls the Keras layer's `__init__` with the rest,
    then `_init_device`; `build` and `get_config` are the mixin's. The
    weights to compute with come from `_crossbar` and `_device_bias`.
    """

    # Axes of the kernel that index output channels (per-channel quantization).
    _kernel_channel_axes = (-1,)

    def _init_device(self, device):
        """Validates and stores the device arguments (a dict from `pop_device_args`)."""
        self.noise = noise_lib.get(device["noise"])
        self.periphery = periphery_lib.get(device["periphery"])
        for name in ("bits", "input_bits", "output_bits"):
            setattr(self, name, quantization.validate_bits(device[name], name))
        for name in ("per_channel", "noisy_bias", "train_noise"):
            setattr(self, name, checks.boolean(name, device[name]))
        if self.train_noise and self.noise is None:
            raise ValueError(
                "`train_noise=True` needs a device noise model. Received: noise=None"
            )
        seed = device["seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.seed = seed
        # Fresh draws for every training step when training with noise.
        self._train_seed_generator = (
            keras.random.SeedGenerator(seed) if self.train_noise else None
        )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_device()

    def get_config(self):
        config = super().get_config()
        config.update(self._device_config())
        return config

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

    # The device-state variables (`DeviceState`), read through the layer.
    chip_seed = _state_variable("chip_seed", "The seed of the current chip's noise realization.")
    device_params = _state_variable("device_params", "The noise model's parameter values.")
    noise_enabled = _state_variable("noise_enabled", "1.0: device noise on, 0.0: off.")
    read_seed = _state_variable(
        "read_seed", "The seed of the next read's noise (layers with read or ADC noise only)."
    )

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

        Returns `(outputs, seed, read_seeds)`; the bias takes the same seeds.
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

    def chip_weights(self):
        """`(kernel, bias)` of the current chip, as an inference pass computes with them.

        Quantized, with the chip's fixed noise drawn from `chip_seed` in the
        order of `call` (kernel, then bias), so they are the weights of
        `call` bit for bit; read noise is not included. `bias` is None for a
        layer without one. The drift evaluator's stacked pass
        (`bayesft_keras.evaluation.stacked`) reads every chip's weights here.
        """
        seed = sampling.chip_seeds(self, False)
        target = quantization.quantize_weight(
            self.kernel, self.bits, self._kernel_channel_axes, self.per_channel
        )
        kernel = target if seed is None else sampling.sample_chip(self, target, seed)
        bias = getattr(self, "bias", None)
        if bias is not None:
            bias = self._device_bias(bias, seed)
        return kernel, bias

    def _device_config(self):
        config = {name: getattr(self, name) for name in DEVICE_ARGS}
        config["noise"] = noise_lib.serialize(self.noise)
        config["periphery"] = periphery_lib.serialize(self.periphery)
        return config

    def _add_conv_bias(self, outputs, seed, read_seeds, channels):
        """Conv outputs plus the device bias (on the channel axis of `data_format`), then the activation."""
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (channels,)
            else:
                bias_shape = (1, channels) + (1,) * self.rank
            bias = ops.reshape(self._device_bias(self.bias, seed, read_seeds), bias_shape)
            outputs = ops.add(outputs, bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    @property
    def _channel_axis(self):
        return -1 if getattr(self, "data_format", "channels_last") == "channels_last" else 1

    # Names of the variables that only the device state adds (not copied by
    # `convert` from a plain Keras layer).
    DEVICE_VARIABLES = ("chip_seed", "device_params", "noise_enabled", "read_seed")
