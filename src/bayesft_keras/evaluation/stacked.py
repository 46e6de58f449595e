"""Several chips in one forward pass: the chips of a group stacked next to the channels.

The per-chip pass (`DriftEvaluator`'s default elsewhere) runs the model once
per chip. A small network such as LeNet-5 then spends most of its time in
layers too narrow for the CPU's vector units (6 channels) and re-convolves
the same input images for every chip. This pass runs `chips` chips at once:

- layers before the first noisy ReRAM layer see the same input for every chip
  and run once, as in the model;
- a noisy ReRAM layer draws each chip's weights from that chip's seed
  (`ReRAM*.chip_weights`, the very draws of a per-chip pass) and computes all
  chips in one operation: a shared input meets a kernel with `chips` times
  the outputs, a stacked input a grouped convolution (`groups=chips`) or a
  batched matmul;
- every later tensor has shape `(batch, ..., chips, channels)`: activations
  and dropout act on it as they are, channel-wise layers (pooling) see the
  chips as extra channels, and any other per-example layer (normalization,
  `Flatten`, `Reshape`, ...) sees the chips folded into the batch.

So a chip's metric is the per-chip pass's up to float rounding (grouped
kernels may sum in another order), and stays a function of its seed alone.
`stacked_plan` says whether a model can run this way; the evaluator falls back
to the per-chip pass otherwise (nested or branching models, read noise, ADCs
and DACs, tiles, `channels_first`).
"""

import keras
from keras import ops

from bayesft_keras.device.layers import ReRAMConv1D
from bayesft_keras.device.layers import ReRAMConv2D
from bayesft_keras.device.layers import ReRAMDense
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin
from bayesft_keras.evaluation.backend import fuses_grouped_bias
from bayesft_keras.evaluation.backend import grouped_conv

L = keras.layers
# Identity at inference (and any layer that says so: `SiteDropout`).
_IDENTITY = (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianDropout,
             L.GaussianNoise, L.AlphaDropout, L.ActivityRegularization)
# Element-wise, or along the last axis only: correct on `(..., chips, channels)` as it is.
_LAST_AXIS = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax)
# Each channel on its own, channel count kept: the chips may pass as extra channels.
_CHANNEL_WISE = (L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D,
                 L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalAveragePooling1D,
                 L.GlobalAveragePooling2D)
# Per example, anything else along the other axes: the chips are folded into the batch.
_PER_EXAMPLE = (L.BatchNormalization, L.LayerNormalization, L.GroupNormalization, L.UnitNormalization,
                L.Rescaling, L.Flatten, L.Reshape, L.Permute, L.ZeroPadding1D, L.ZeroPadding2D,
                L.Cropping1D, L.Cropping2D, L.UpSampling1D, L.UpSampling2D, L.RepeatVector)
# Activations that act element-wise (applied before the chips are split off the channels).
_ELEMENTWISE = {"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish",
                "tanh", "sigmoid", "hard_sigmoid", "hard_silu", "softplus", "softsign", "exponential"}


def stacked_plan(model, device_layers):
    """The steps of a stacked pass through `model`, or None when it cannot run stacked.

    Args:
        model: the evaluator's device copy (one input, one output).
        device_layers: its noisy ReRAM layers in chip-seed order
            (`bayesft_keras.device.chip.device_layers`).

    Returns:
        A list of `(kind, layer, seed_index)`, kind one of "device",
        "identity", "last_axis", "channel_wise", "per_example" and "plain"
        (a ReRAM layer without noise: the same on every chip).
    """
    layers = _chain(model)
    if layers is None:
        return None
    index = {id(layer): i for i, layer in enumerate(device_layers)}
    steps = []
    for layer in layers:
        if isinstance(layer, L.InputLayer):
            continue
        if isinstance(layer, DeviceLayerMixin):
            if id(layer) not in index:
                if layer.has_read_noise:
                    return None
                steps.append(("plain", layer, None))
                continue
            if not _stackable_device_layer(layer):
                return None
            steps.append(("device", layer, index[id(layer)]))
        elif isinstance(layer, _IDENTITY) or getattr(layer, "identity_at_inference", False):
            steps.append(("identity", layer, None))
        elif isinstance(layer, L.Softmax) and getattr(layer, "axis", -1) not in (-1, [-1], (-1,)):
            return None
        elif isinstance(layer, _LAST_AXIS):
            steps.append(("last_axis", layer, None))
        elif isinstance(layer, _CHANNEL_WISE) and getattr(layer, "data_format", "channels_last") == "channels_last":
            steps.append(("channel_wise", layer, None))
        elif isinstance(layer, _PER_EXAMPLE):
            steps.append(("per_example", layer, None))
        else:
            return None
    if len([s for s in steps if s[0] == "device"]) != len(device_layers):
        return None
    return steps


def _chain(model):
    """The layers of a model that is one chain (each layer feeds the next), or None."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    elif len(model.inputs) == 1 and len(model.outputs) == 1:
        layers = [layer for layer in model.layers if not isinstance(layer, L.InputLayer)]
        previous = model.inputs[0]
        for layer in layers:
            try:
                if layer.input is not previous:
                    return None
                previous = layer.output
            except (AttributeError, ValueError):  # several inbound nodes
                return None
        if previous is not model.outputs[0]:
            return None
    else:
        return None
    if any(isinstance(layer, keras.Model) for layer in layers):
        return None
    shape = model.inputs[0].shape
    if any(d is None for d in shape[1:]):
        return None  # the reshapes below need static sizes
    return layers


def _stackable_device_layer(layer):
    if layer.has_read_noise or layer.periphery is not None:
        return False
    if layer.input_bits is not None or layer.output_bits is not None:
        return False
    if isinstance(layer, ReRAMDense):
        return True
    if isinstance(layer, (ReRAMConv1D, ReRAMConv2D)):
        return layer.groups == 1 and layer.data_format == "channels_last" and layer.padding in ("valid", "same")
    return False


def stacked_forward(steps, x, weights, chips):
    """The model's output for `chips` chips at once, shape `(batch, ..., chips, outputs)`.

    Args:
        steps: `stacked_plan`'s steps.
        x: a batch of inputs (the same for every chip).
        weights: `{seed_index: (kernels, biases)}`: every chip's weights
            of each noisy ReRAM layer, stacked on a first axis (`chip_specs`),
            biases None for a layer without bias.
        chips: the number of chips (a Python int).
    """
    h, stacked = x, False
    for kind, layer, seed_index in steps:
        if kind == "identity":
            continue
        if kind == "device":
            h = _device_layer(layer, h, stacked, *weights[seed_index], chips)
            stacked = True
        elif not stacked:
            h = layer(h, training=False)
        elif kind == "last_axis":
            h = layer(h, training=False)
        elif kind == "channel_wise":
            h = _split(layer(_merge(h), training=False), chips)
        elif isinstance(layer, L.Flatten) and layer.data_format == "channels_last":
            h = _flatten(h, chips)
        else:  # "per_example", "plain"
            h = _unfold(layer(_fold(h, chips), training=False), chips)
    if not stacked:  # no noisy layer reached: every chip alike
        h = ops.stack([h] * chips, axis=-2)
    return h


def chip_specs(steps):
    """`(seed_index, layer, with_bias)` of each noisy ReRAM layer, and the `(shape, dtype)` of its weights per chip."""
    layers, specs = [], []
    for kind, layer, seed_index in steps:
        if kind != "device":
            continue
        with_bias = getattr(layer, "bias", None) is not None
        layers.append((seed_index, layer, with_bias))
        specs.append((tuple(layer.kernel.shape), layer.kernel.dtype))
        if with_bias:
            specs.append((tuple(layer.bias.shape), layer.bias.dtype))
    return layers, specs


def _merge(h):
    """`(..., chips, c)` -> `(..., chips * c)`."""
    return ops.reshape(h, (-1,) + tuple(h.shape[1:-2]) + (h.shape[-2] * h.shape[-1],))


def _split(h, chips):
    """`(..., chips * c)` -> `(..., chips, c)`."""
    return ops.reshape(h, (-1,) + tuple(h.shape[1:-1]) + (chips, h.shape[-1] // chips))


def _flatten(h, chips):
    """`Flatten` of every chip: `(n, ..., chips, c)` -> `(n, chips, prod(...) * c)`."""
    rank = len(h.shape)
    if rank > 3 and any(d != 1 for d in h.shape[1:-2]):
        h = ops.transpose(h, [0, rank - 2] + list(range(1, rank - 2)) + [rank - 1])
    return ops.reshape(h, (-1, chips, _size(h.shape[1:]) // chips))


def _fold(h, chips):
    """`(n, ..., chips, c)` -> `(chips * n, ..., c)`: each chip's examples in turn."""
    rank = len(h.shape)
    h = ops.transpose(h, [rank - 2] + list(range(rank - 2)) + [rank - 1])
    return ops.reshape(h, (-1,) + tuple(h.shape[2:]))


def _unfold(h, chips):
    """`(chips * n, ...)` -> `(n, ..., chips, c)`, the inverse of `_fold` (any trailing shape)."""
    h = ops.reshape(h, (chips, -1) + tuple(h.shape[1:]))
    rank = len(h.shape)
    return ops.transpose(h, list(range(1, rank - 1)) + [0, rank - 1])


def _device_layer(layer, h, stacked, kernels, biases, chips):
    """A noisy ReRAM layer on all chips: `kernels` of shape `(chips, *kernel)`, `biases` `(chips, units)` or None."""
    activation = layer.activation
    units = kernels.shape[-1]
    if isinstance(layer, ReRAMDense):
        if stacked:
            out = ops.einsum("...kd,kdo->...ko", h, kernels)
            if biases is not None:
                out = ops.add(out, biases)
            return activation(out)
        out = ops.matmul(h, _outputs_last(kernels, chips))
    elif stacked and _covers_input(layer, h):
        # One output position: a matmul per chip on the flattened window,
        # which CPUs run far faster than a convolution of many small groups.
        rank = len(h.shape)
        h = ops.transpose(h, [0, rank - 2] + list(range(1, rank - 2)) + [rank - 1])
        h = ops.reshape(h, (-1, chips, _size(h.shape[2:])))
        out = ops.einsum("nkd,kdo->nko", h, ops.reshape(kernels, (chips, -1, units)))
        out = ops.reshape(out, (-1,) + (1,) * (rank - 3) + (chips, units))
        if biases is not None:
            out = ops.add(out, biases)
        return activation(out)
    elif stacked:
        # The chips are the groups of a grouped convolution. Where a backend
        # cannot fuse the bias and activation into it (TensorFlow's Eigen
        # kernels fail if asked to), they are added after the split.
        out = grouped_conv(_merge(h), _outputs_last(kernels, chips), layer.strides, layer.padding, layer.dilation_rate)
        if not fuses_grouped_bias():
            out = _split(out, chips)
            if biases is not None:
                out = ops.add(out, biases)
            return activation(out)
    else:
        out = ops.conv(
            h,
            _outputs_last(kernels, chips),
            strides=list(layer.strides),
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format="channels_last",
        )
    # Bias and an element-wise activation on the merged channels, where a
    # backend can fuse them into the convolution or the matmul.
    if biases is not None:
        out = ops.add(out, ops.reshape(biases, (chips * units,)))
    if keras.activations.serialize(activation) in _ELEMENTWISE:
        return _split(activation(out), chips)
    return activation(_split(out, chips))


def _outputs_last(kernels, chips):
    """`(chips, *window, in, units)` -> `(*window, in, chips * units)`: chip c has outputs `c * units`, ..."""
    rank = len(kernels.shape)
    kernel = ops.transpose(kernels, list(range(1, rank - 1)) + [0, rank - 1])
    return ops.reshape(kernel, tuple(kernel.shape[:-2]) + (chips * kernel.shape[-1],))


def _size(shape):
    size = 1
    for d in shape:
        size *= d
    return size


def _covers_input(layer, h):
    """Whether the layer's window covers its whole (unpadded) input: one output position."""
    spatial = tuple(h.shape[1:-2])
    return (
        layer.padding == "valid"
        and tuple(layer.kernel_size) == spatial
        and all(d == 1 for d in layer.dilation_rate)
    )
