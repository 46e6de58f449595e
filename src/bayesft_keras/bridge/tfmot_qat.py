"""Quantization-aware training of Keras 2 (tf_keras) models on the device grid, via tfmot.

tensorflow-model-optimization wraps each layer in a `QuantizeWrapperV2` that
fake-quantizes its weights in every forward pass. `DeviceQuantizeConfig` makes
that quantization the core's device quantizer
(`bayesft_keras.device.quantization.quantize_weight`): the symmetric narrow-range grid
of `2^bits - 1` levels with `scale = max|w| / (2^(bits-1) - 1)` per output
channel (one range per (input channel, multiplier) pair for depthwise kernels,
one per tensor for biases), rounding `floor(w / scale + 0.5)` through TF's
`fake_quant_with_min_max_vars(_per_channel)` with `narrow_range=True`, and
a straight-through gradient. Unlike tfmot's own weight quantizers, the range is
taken from the current weights in every call (training and inference alike),
so there are no stored range variables that could lag behind the weights.

Importing this module imports tensorflow-model-optimization, which switches
`tf.keras` to tf_keras for the whole process: use it only in a Keras 2
process (`TF_USE_LEGACY_KERAS=1`), never in one that uses the Keras 3 core.
"""

# First, before tfmot (which would switch this process's tf.keras): legacy_keras
# refuses to be imported in a Keras 3 process.
from bayesft_keras.bridge.legacy_keras import check_legacy_model  # isort: skip
from bayesft_keras.bridge.legacy_keras import is_device_layer  # isort: skip
from bayesft_keras.bridge.legacy_keras import kernel_attribute  # isort: skip

import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402

from bayesft_keras.device import quantization  # noqa: E402

_PACKAGE = "bayesft_keras"


def quantize_weight_tf(w, bits, channel_axes=(-1,), per_channel=True):
    """`bayesft_keras.device.quantization.quantize_weight` in plain TensorFlow, for tf_keras graphs.

    The same grid, range, rounding and TF op, and a straight-through gradient.

    Args:
        w: a float32 tensor or variable.
        bits: precision, an integer in [2, 16].
        channel_axes: the trailing axes that together index output channels,
            e.g. `(-1,)` for Dense/Conv kernels, `(-2, -1)` for depthwise.
        per_channel: one range per output channel (True) or per tensor.
    """
    # A plain tensor: tf.custom_gradient must not capture variables.
    x = tf.identity(w)
    rank = len(x.shape)
    if not per_channel or rank == 0:
        return _straight_through(x, bits, per_channel=False)
    axes = _trailing_axes(channel_axes, rank)
    shape = tf.shape(x)
    flat = tf.reshape(x, tf.concat([shape[: rank - len(axes)], [-1]], 0))
    return tf.reshape(_straight_through(flat, bits, per_channel=True), shape)


def _trailing_axes(channel_axes, rank):
    axes = sorted(int(a) % rank for a in channel_axes)
    if not axes or axes != list(range(rank - len(axes), rank)):
        raise ValueError(f"`channel_axes` must be trailing axes. Received: channel_axes={channel_axes!r}")
    return axes


def _straight_through(x, bits, per_channel):
    @tf.custom_gradient
    def quantize(x):
        if per_channel:
            max_abs = tf.reduce_max(tf.abs(x), axis=tuple(range(len(x.shape) - 1)))
        else:
            max_abs = tf.reduce_max(tf.abs(x))
        # Same guard as the core: an all-zero channel keeps a finite scale.
        max_abs = tf.maximum(max_abs, quantization.EPSILON)
        fake_quant = (
            tf.quantization.fake_quant_with_min_max_vars_per_channel
            if per_channel
            else tf.quantization.fake_quant_with_min_max_vars
        )
        q = fake_quant(x, -max_abs, max_abs, num_bits=bits, narrow_range=True)
        return q, lambda upstream: upstream

    return quantize(x)


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class DeviceWeightQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
    """tfmot quantizer of a weight tensor onto the device grid (range from the weights).

    Args:
        bits: precision, an integer in [2, 16].
        channel_axes: the trailing axes that together index output channels
            (`(-1,)` for Dense/Conv kernels, `(-2, -1)` for depthwise).
        per_channel: one range per output channel (True) or one per tensor.
    """

    def __init__(self, bits, channel_axes=(-1,), per_channel=True):
        self.bits = _require_bits(bits)
        if not isinstance(per_channel, bool):
            raise ValueError(f"`per_channel` must be a bool. Received: per_channel={per_channel!r}")
        self.channel_axes = tuple(int(a) for a in channel_axes)
        if not self.channel_axes or any(a >= 0 for a in self.channel_axes):
            raise ValueError(
                "`channel_axes` must be negative (trailing) axes, e.g. (-1,). "
                f"Received: channel_axes={channel_axes!r}"
            )
        self.per_channel = per_channel

    def build(self, tensor_shape, name, layer):
        return {}  # no range variables: the range is max|w| of the current weights

    def __call__(self, inputs, training, weights, **kwargs):
        return quantize_weight_tf(inputs, self.bits, self.channel_axes, self.per_channel)

    def get_config(self):
        return {"bits": self.bits, "channel_axes": list(self.channel_axes), "per_channel": self.per_channel}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self == other


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class DeviceQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """tfmot QuantizeConfig: a device layer's kernel and bias on the `bits`-bit grid.

    Activations and outputs stay in float, as in the core's ReRAM layers
    (`input_bits=None, output_bits=None`).

    Args:
        bits: weight precision, an integer in [2, 16].
        per_channel: one kernel range per output channel (True) or per kernel.
    """

    def __init__(self, bits, per_channel=True):
        self.bits = _require_bits(bits)
        if not isinstance(per_channel, bool):
            raise ValueError(f"`per_channel` must be a bool. Received: per_channel={per_channel!r}")
        self.per_channel = per_channel

    def _attributes(self, layer):
        kernel, channel_axes = kernel_attribute(layer)
        pairs = [(kernel, DeviceWeightQuantizer(self.bits, channel_axes, self.per_channel))]
        if getattr(layer, "use_bias", False) and layer.bias is not None:
            # A bias is one crossbar row: one range for the whole vector.
            pairs.append(("bias", DeviceWeightQuantizer(self.bits, per_channel=False)))
        return pairs

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, name), quantizer) for name, quantizer in self._attributes(layer)]

    def set_quantize_weights(self, layer, quantize_weights):
        names = [name for name, _ in self._attributes(layer)]
        if len(quantize_weights) != len(names):
            raise ValueError(
                f"Layer {layer.name!r} expects {len(names)} quantized weights ({names}). "
                f"Received: {len(quantize_weights)}"
            )
        for name, value in zip(names, quantize_weights):
            setattr(layer, name, value)

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"bits": self.bits, "per_channel": self.per_channel}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self == other


class _NoLayoutTransform(tfmot.quantization.keras.QuantizeLayoutTransform):
    # No batch-norm folding and no input quantize layer: the device quantizes
    # the weights of its layers and nothing else.
    def apply(self, model, layer_quantize_map):
        return model, layer_quantize_map


class _NoRegistry(tfmot.quantization.keras.QuantizeRegistry):
    # Every quantized layer brings its own DeviceQuantizeConfig; no layer gets
    # tfmot's default 8-bit treatment (e.g. output quantizers of neighbours).
    def get_quantize_config(self, layer):
        return None

    def supports(self, layer):
        return False


class DeviceQuantizeScheme(tfmot.quantization.keras.QuantizeScheme):
    """tfmot QuantizeScheme of the device: weights only, no layout transforms."""

    def get_layout_transformer(self):
        return _NoLayoutTransform()

    def get_quantize_registry(self):
        return _NoRegistry()


def custom_objects():
    """The classes needed to load a model quantized by `quantize_model`."""
    return {
        "DeviceQuantizeConfig": DeviceQuantizeConfig,
        "DeviceWeightQuantizer": DeviceWeightQuantizer,
    }


def quantize_scope():
    """Context manager to load or clone models quantized by `quantize_model`.

    Example:

    >>> with quantize_scope():
    ...     model = tf_keras.models.load_model("qat.h5")
    """
    return tfmot.quantization.keras.quantize_scope(custom_objects())


def quantize_model(model, bits, per_channel=True):
    """Returns a tfmot quantization-aware copy of a tf_keras model on the device grid.

    Every `Dense`, `Conv1D`, `Conv2D` and `DepthwiseConv2D` layer is wrapped in
    tfmot's `QuantizeWrapperV2` with a `DeviceQuantizeConfig`: its kernel (per
    output channel) and bias (per tensor) are fake-quantized to `bits` bits
    exactly as the core's ReRAM layers do, with a straight-through gradient.
    Other layers are left as they are. `model` and its weights are not
    modified. Compile and fit the result as usual; save it with `.save` and
    load it inside `quantize_scope`.

    Args:
        model: a built tf_keras Sequential or Functional model (not nested).
        bits: weight precision, an integer in [2, 16].
        per_channel: one kernel range per output channel (True) or one per
            kernel (False).

    Returns:
        A new tf_keras model (uncompiled).
    """
    bits = _require_bits(bits)
    if not isinstance(per_channel, bool):
        raise ValueError(f"`per_channel` must be a bool. Received: per_channel={per_channel!r}")
    check_legacy_model(model, "quantize_model")
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            raise ValueError(
                f"Model {model.name!r} contains the nested model {layer.name!r}; tfmot cannot "
                "quantize nested models. Flatten it into one Sequential or Functional model."
            )
    # Annotate a private copy, so that the caller's layers gain no new nodes.
    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    config = DeviceQuantizeConfig(bits, per_channel)
    annotated = []

    def annotate(layer):
        if not is_device_layer(layer):
            return layer
        annotated.append(layer.name)
        return tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=config)

    with quantize_scope():
        annotated_model = tf_keras.models.clone_model(copy, clone_function=annotate)
        if not annotated:
            raise ValueError(
                f"Model {model.name!r} has no layer the device computes: it needs a Dense, "
                "Conv1D, Conv2D or DepthwiseConv2D layer."
            )
        return tfmot.quantization.keras.quantize_apply(annotated_model, scheme=DeviceQuantizeScheme())


def _require_bits(bits):
    if bits is None:
        raise ValueError(
            f"`bits` must be an integer in [{quantization.MIN_BITS}, {quantization.MAX_BITS}] "
            "for quantization-aware training. Received: bits=None"
        )
    return quantization.validate_bits(bits, "bits")
