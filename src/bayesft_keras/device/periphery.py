"""The crossbar's periphery: tiles, ADCs with a finite range and noise, drift compensation.

A ReRAM layer without a `Periphery` computes one ideal matrix product (and the
input/output bits of the layer, if any). With one:

- **tiles**: a kernel of more rows (inputs) or columns (outputs) than
  `tile_size` is split into tiles; each tile computes its partial product
  with its own ADC, and the partial sums of a column are added digitally
  (aihwkit: `MappingParameter.max_input_size / max_output_size`, the
  `TileModuleArray`). A convolution's rows are (kernel position, input
  channel) pairs, so a tile holds whole input channels:
  `tile_rows // (kernel area)` of them.
- **ADC** (per tile, per read): the tile output in full-scale units,
  `y_n = y / (a b)`, `a = max|x|` of the tile's input (per sample, aihwkit's
  `NoiseManagementType.ABS_MAX`) and `b = max|W|` of the tile's programmed
  weights (aihwkit's `weight_scaling_omega = 1`), gets the ADC noise
  `y_n + out_noise * n` (`n ~ N(0, 1)`, fresh on every forward pass) and is
  clipped to `[-out_bound, out_bound]` (aihwkit `IOParameters.out_noise`,
  `out_bound`), then quantized to the layer's `output_bits`.
- **global drift compensation**: each tile's output is multiplied by
  `alpha = mean|W_prog| / mean|W_t|`, the read-out of the tile on the
  one-hot reference inputs (the identity) right after programming, divided by
  the same read-out at the time of inference (aihwkit's
  `GlobalDriftCompensation`, with a noise-free read-out).
"""

import math

import keras
from keras import ops

from bayesft_keras.device import quantization
from bayesft_keras.device.config_value import ConfigValue

_PACKAGE = "bayesft_keras"
_EPSILON = 1e-12


def _check_tile_size(tile_size):
    if tile_size is None:
        return None
    if isinstance(tile_size, (list, tuple)):
        values = list(tile_size)
    else:
        values = [tile_size, tile_size]
    if len(values) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(
            "`tile_size` of Periphery must be None, an integer >= 1 (square tiles) or a pair "
            f"(rows, columns) of integers >= 1. Received: tile_size={tile_size!r}"
        )
    return tuple(values)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Periphery(ConfigValue):
    """How a crossbar is read: tiles, ADC range and noise, global drift compensation.

    See the module docstring for the formulas and their aihwkit sources.

    Args:
        tile_size: None (one crossbar per layer), an integer (square tiles,
            e.g. 256) or `(rows, columns)`; each >= 1.
        out_noise: ADC noise std in full-scale units (aihwkit `out_noise`,
            default there 0.06), >= 0. Drawn fresh on every forward pass.
        out_bound: ADC range in full-scale units (aihwkit `out_bound`,
            default there 12), > 0, or None for no bound.
        drift_compensation: scale each tile's output by its global drift
            compensation factor (needs a noise model with a time parameter to
            change anything).
    """

    def __init__(self, tile_size=None, out_noise=0.0, out_bound=None, drift_compensation=False):
        self.tile_size = _check_tile_size(tile_size)
        try:
            out_noise = float(out_noise)
        except (TypeError, ValueError):
            out_noise = float("nan")
        if not out_noise >= 0 or out_noise == float("inf"):
            raise ValueError(
                "`out_noise` of Periphery must be a finite number >= 0 (full-scale units). "
                f"Received: out_noise={out_noise!r}"
            )
        self.out_noise = out_noise
        if out_bound is not None:
            try:
                out_bound = float(out_bound)
            except (TypeError, ValueError):
                out_bound = float("nan")
            if not (out_bound > 0 and math.isfinite(out_bound)):
                raise ValueError(
                    "`out_bound` of Periphery must be None (no bound) or a finite number > 0 "
                    f"(full-scale units). Received: out_bound={out_bound!r}"
                )
        self.out_bound = out_bound
        if not isinstance(drift_compensation, bool):
            raise ValueError(
                "`drift_compensation` of Periphery must be a bool. "
                f"Received: drift_compensation={drift_compensation!r}"
            )
        self.drift_compensation = drift_compensation

    @property
    def has_read_noise(self):
        return self.out_noise > 0

    @property
    def normalizes(self):
        """Whether the ADC works in full-scale units (noise or bound)."""
        return self.out_noise > 0 or self.out_bound is not None

    def get_config(self):
        return {
            "tile_size": None if self.tile_size is None else list(self.tile_size),
            "out_noise": self.out_noise,
            "out_bound": self.out_bound,
            "drift_compensation": self.drift_compensation,
        }

    # -- the crossbar -------------------------------------------------------------

    def blocks(self, num_inputs, num_outputs, rows_per_input=1):
        """`(input blocks, output blocks)`: lists of `(start, stop)` of the tiles."""
        if self.tile_size is None:
            return [(0, num_inputs)], [(0, num_outputs)]
        rows, cols = self.tile_size
        if rows_per_input > rows:
            raise ValueError(
                f"`tile_size` rows ({rows}) must hold at least one input channel of the kernel "
                f"({rows_per_input} rows: the kernel area). Received: tile_size={list(self.tile_size)}"
            )
        per_tile = rows // rows_per_input
        return _split(num_inputs, per_tile), _split(num_outputs, cols)

    def crossbar(
        self,
        inputs,
        kernel,
        op,
        *,
        target,
        channel_axis=-1,
        rows_per_input=1,
        output_bits=None,
        seed=None,
        noise_gain=1.0,
        chip=None,
        reference=None,
    ):
        """The layer's crossbar outputs (before bias) through tiles and their ADCs.

        Args:
            inputs: the (DAC-quantized) inputs; `channel_axis` indexes their
                input channels and the outputs' channels.
            kernel: the weights of this read, shape `(..., inputs, outputs)`.
            op: `op(x, w) -> y`, the layer's linear operation.
            target: the programmed (quantized, noise-free) kernel: ADC scale.
            rows_per_input: crossbar rows per input channel (kernel area).
            output_bits: ADC precision, or None.
            seed: seed source of the ADC noise (None: no ADC noise).
            noise_gain: multiplies `out_noise` (0 switches it off).
            chip, reference: the chip's kernel at the time of inference and
                right after programming, for drift compensation (None: none).
        """
        in_blocks, out_blocks = self.blocks(kernel.shape[-2], kernel.shape[-1], rows_per_input)
        columns = []
        for j0, j1 in out_blocks:
            total = None
            for i0, i1 in in_blocks:
                x = inputs if len(in_blocks) == 1 else _slice(inputs, channel_axis, i0, i1)
                part = lambda w: w[..., i0:i1, j0:j1]  # noqa: E731
                y = op(x, part(kernel) if len(in_blocks) * len(out_blocks) > 1 else kernel)
                y = self._adc(y, x, part(target), output_bits, seed, noise_gain)
                if reference is not None and chip is not None and self.drift_compensation:
                    y = y * _compensation(part(reference), part(chip))
                total = y if total is None else total + y
            columns.append(total)
        return columns[0] if len(columns) == 1 else ops.concatenate(columns, axis=channel_axis)

    def _adc(self, y, x, target, output_bits, seed, noise_gain):
        if not self.normalizes:
            return quantization.quantize_activation(y, output_bits)
        axes = tuple(range(1, len(x.shape)))
        a = ops.max(ops.abs(x), axis=axes, keepdims=True)
        a = ops.stop_gradient(ops.maximum(ops.reshape(a, (-1,) + (1,) * (len(y.shape) - 1)), _EPSILON))
        b = ops.stop_gradient(ops.maximum(ops.max(ops.abs(target)), _EPSILON))
        scale = a * b
        y = y / scale
        if self.out_noise > 0 and seed is not None:
            std = ops.cast(self.out_noise, y.dtype) * ops.cast(noise_gain, y.dtype)
            y = y + std * keras.random.normal(ops.shape(y), dtype=y.dtype, seed=seed)
        if self.out_bound is not None:
            y = ops.clip(y, -self.out_bound, self.out_bound)
        y = quantization.quantize_activation(y, output_bits)
        return y * scale


def _compensation(reference, chip):
    """aihwkit's global drift compensation factor on the one-hot read-out: mean|W_ref| / mean|W_t|."""
    ref = ops.mean(ops.abs(ops.stop_gradient(reference)))
    now = ops.mean(ops.abs(ops.stop_gradient(chip)))
    return ref / ops.maximum(now, _EPSILON)


def _split(n, size):
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def _slice(x, axis, start, stop):
    axis = axis % len(x.shape)
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def get(identifier):
    """A `Periphery` from an instance, its config (or serialized config), or None."""
    if identifier is None or isinstance(identifier, Periphery):
        return identifier
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            obj = keras.saving.deserialize_keras_object(identifier)
            if isinstance(obj, Periphery):
                return obj
        else:
            return Periphery(**identifier)
    raise ValueError(
        "`periphery` must be a Periphery (e.g. Periphery(tile_size=256, out_noise=0.04)), its "
        f"config, or None. Received: periphery={identifier!r}"
    )


def serialize(periphery):
    return None if periphery is None else keras.saving.serialize_keras_object(periphery)
