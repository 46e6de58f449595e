"""`convert`: put an existing Keras model on a simulated ReRAM device, and back."""

import keras

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import quantization
from bayesft_keras.device.layers import REPLACEMENTS
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin

_UNSET = object()
_DEVICE_KEYS = (
    "noise",
    "bits",
    "per_channel",
    "input_bits",
    "output_bits",
    "noisy_bias",
    "train_noise",
    "seed",
    "periphery",
)


def _check_model(model, fn):
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` of {fn}() must be a Keras 3 `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(f"`model` of {fn}() must be built. Call it on data or build it first.")


def _clone(model, clone_layer):
    """Clones ``model`` with ``clone_layer``, then copies every weight by name."""
    pairs = []

    def clone_function(layer):
        new = clone_layer(layer)
        pairs.append((layer, new))
        return new

    try:
        clone = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    except ValueError as e:
        raise ValueError(
            "Only Sequential and Functional models (nested ones too) can be "
            f"converted; {model.name!r} could not be cloned: {e}"
        ) from e
    for old, new in pairs:
        _copy_weights(old, new)
    return clone


def _copy_weights(old, new):
    device_vars = set(DeviceLayerMixin.DEVICE_VARIABLES)
    old_values = {
        v.path.split("/")[-1]: v for v in old.weights if v.path.split("/")[-1] not in device_vars
    }
    for v in new.weights:
        name = v.path.split("/")[-1]
        if name in old_values:
            v.assign(old_values[name].value)
        elif name not in device_vars:
            raise ValueError(
                f"Cannot copy weight {name!r} of layer {new.name!r}: the source "
                f"layer {old.name!r} has no weight of that name."
            )


def convert(
    model,
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
    """Returns a copy of ``model`` computed on a simulated ReRAM device.

    Every `Dense`, `Conv1D`, `Conv2D` and `DepthwiseConv2D` layer (in nested
    models too) becomes its ReRAM counterpart with the same configuration and
    weights; ReRAM layers get the new device settings. All other layers are
    cloned with their weights. ``model`` itself is left untouched.

    Args:
        model: a built Sequential or Functional `keras.Model`.
        noise: the device noise model (`bayesft_keras.device.noise`), or None.
        bits, per_channel, input_bits, output_bits, noisy_bias, train_noise,
            seed, periphery: the device arguments of the ReRAM layers (see
            `ReRAMDense`).

    Returns:
        A new `keras.Model`.
    """
    _check_model(model, "convert")
    device = {
        "noise": noise_lib.serialize(noise_lib.get(noise)),
        "bits": quantization.validate_bits(bits, "bits"),
        "per_channel": per_channel,
        "input_bits": quantization.validate_bits(input_bits, "input_bits"),
        "output_bits": quantization.validate_bits(output_bits, "output_bits"),
        "noisy_bias": noisy_bias,
        "train_noise": train_noise,
        "seed": seed,
        "periphery": periphery_lib.serialize(periphery_lib.get(periphery)),
    }

    def clone_layer(layer):
        target = _device_class(layer)
        if target is None:
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        config.update(device)
        return target.from_config(config)

    return _clone(model, clone_layer)


def to_keras(model):
    """Returns a copy of ``model`` with every ReRAM layer replaced by its plain Keras layer.

    The programmed weights are copied; device settings and state are dropped.
    """
    _check_model(model, "to_keras")

    def clone_layer(layer):
        if isinstance(layer, DeviceLayerMixin):
            parent = _keras_class(layer)
            config = {k: v for k, v in layer.get_config().items() if k not in _DEVICE_KEYS}
            return parent.from_config(config)
        return layer.__class__.from_config(layer.get_config())

    return _clone(model, clone_layer)


def _device_class(layer):
    if isinstance(layer, DeviceLayerMixin):
        return type(layer)
    # Exact class match: subclasses of Dense etc. may change the computation.
    return REPLACEMENTS.get(type(layer))


def _keras_class(layer):
    for parent, device_cls in REPLACEMENTS.items():
        if type(layer) is device_cls:
            return parent
    raise ValueError(f"No plain Keras class known for {type(layer).__name__}")
