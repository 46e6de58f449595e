"""`convert`: put an existing Keras model on a simulated ReRAM device, and back.

`device_copy` is the drift evaluator's variant (keeps a model's own device
settings); all of them clone through `clone_with_weights`.
"""

import warnings

import keras

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import quantization
from bayesft_keras.device.layers import REPLACEMENTS
from bayesft_keras.device.layers.device_layer import DEVICE_ARGS
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin
from bayesft_keras.device.walk import walk_layers

def _check_model(model, fn):
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` of {fn}() must be a Keras 3 `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(f"`model` of {fn}() must be built. Call it on data or build it first.")


def clone_with_weights(model, clone_layer, purpose="converted"):
    """Clones `model` layer by layer with `clone_layer` and copies every weight by name.

    The one clone-and-copy of the package: `convert`, `to_keras` and the drift
    evaluator's device copy (`device_copy`) all go through it. Device-state
    variables (`chip_seed`, ...) are left as the new layers create them.

    Args:
        model: a built Sequential or Functional `keras.Model`.
        clone_layer: maps a layer of `model` to its new layer.
        purpose: what the clone is for, in the error message ("converted",
            "evaluated").

    Returns:
        `(clone, weight_pairs)`: the new model and the `(source, copy)`
        variable pairs, so that a caller can copy later weights again.
    """
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
            f"{purpose}; {model.name!r} could not be cloned: {e}"
        ) from e
    weight_pairs = [pair for old, new in pairs for pair in _weight_pairs(old, new)]
    for source, target in weight_pairs:
        target.assign(source.value)
    return clone, weight_pairs


def _weight_pairs(old, new):
    """The `(old, new)` variable pairs of two layers, matched by name; device state left out."""
    device_vars = set(DeviceLayerMixin.DEVICE_VARIABLES)
    old_values = {_leaf(v): v for v in old.weights if _leaf(v) not in device_vars}
    pairs = []
    for v in new.weights:
        name = _leaf(v)
        if name in old_values:
            pairs.append((old_values[name], v))
        elif name not in device_vars:
            raise ValueError(
                f"Cannot copy weight {name!r} of layer {new.name!r}: the source "
                f"layer {old.name!r} has no weight of that name."
            )
    return pairs


def _leaf(variable):
    return variable.path.split("/")[-1]


def device_copy(model, noise=None, bits=None, periphery=None):
    """A device copy of `model` for evaluation, and its `(source, copy)` weight pairs.

    A plain Keras model is converted (its `Dense`, `Conv*` and
    `DepthwiseConv2D` layers get `noise`, default `LogNormalDrift()`); a
    model that already has ReRAM layers keeps their device settings, except
    those given here (`noise`, `bits`, `periphery`, each None to keep).

    Args:
        model: a built Sequential or Functional `keras.Model` (not modified).
        noise: a `DeviceNoise` instance or None.
        bits: weight precision or None.
        periphery: a `Periphery` instance or None.
    """
    bits = quantization.validate_bits(bits, "bits")
    device = [l for l in walk_layers(model) if isinstance(l, DeviceLayerMixin)]
    own_noise = next((l.noise for l in device if l.noise is not None), None)
    target = noise or own_noise or noise_lib.LogNormalDrift()

    def clone_layer(layer):
        config = layer.get_config()
        if isinstance(layer, DeviceLayerMixin):
            cls = type(layer)
            if noise is not None or own_noise is None:
                config["noise"] = noise_lib.serialize(target)
        elif not device and type(layer) in REPLACEMENTS:
            cls = REPLACEMENTS[type(layer)]
            config["noise"] = noise_lib.serialize(target)
        else:
            cls = type(layer)
        if bits is not None and issubclass(cls, DeviceLayerMixin):
            config["bits"] = bits
        if periphery is not None and issubclass(cls, DeviceLayerMixin):
            config["periphery"] = periphery_lib.serialize(periphery)
        return cls.from_config(config)

    return clone_with_weights(model, clone_layer, purpose="evaluated")


def convert(model, noise=None, *, skip_unsupported=False, **device_args):
    """Returns a copy of `model` computed on a simulated ReRAM device.

    Every `Dense`, `Conv1D`, `Conv2D` and `DepthwiseConv2D` layer (in nested
    models too) becomes its ReRAM counterpart with the same configuration and
    weights; ReRAM layers get the new device settings. `model` itself is
    left untouched.

    The other layers are cloned with their weights, as they are:

    - layers without weights (`Flatten`, `Dropout`, pooling, activations,
      reshapes, ...) compute nothing on the crossbar;
    - normalization layers (`BatchNormalization`, `LayerNormalization`,
      `GroupNormalization`, `Normalization`, ...) and `PReLU` hold weights,
      but they are the chip's digital periphery: they stay digital and exact;
    - any other layer that holds weights (`LSTM`, `Conv3D`, `Embedding`,
      `Conv2DTranspose`, a subclass of `Dense`, a custom layer, ...) cannot be
      put on the device: its weights would not drift, and the drift results
      would be silently optimistic. `convert` raises `ValueError` naming
      every such layer, unless `skip_unsupported=True`, which keeps them
      as they are (digital, noise-free) with a warning naming them.

    Args:
        model: a built Sequential or Functional `keras.Model`.
        noise: the device noise model (`bayesft_keras.device.noise`), or `None`.
        skip_unsupported: keep layers that hold weights but cannot be put on
            the device as they are, with a warning, instead of raising.
        **device_args: the other device arguments of the ReRAM layers
            (`bits`, `per_channel`, `input_bits`, `output_bits`, `noisy_bias`,
            `train_noise`, `seed`, `periphery`; see `ReRAMDense`), at the
            layers' defaults when left out.

    Returns:
        A new `keras.Model`.
    """
    _check_model(model, "convert")
    if not isinstance(skip_unsupported, bool):
        raise ValueError(
            f"`skip_unsupported` of convert() must be a bool. Received: skip_unsupported={skip_unsupported!r}"
        )
    unknown = sorted(set(device_args) - set(DEVICE_ARGS))
    if unknown:
        raise TypeError(f"convert() got an unexpected keyword argument {unknown[0]!r}")
    device = {**DEVICE_ARGS, **device_args}
    device["noise"] = noise_lib.serialize(noise_lib.get(noise))
    for name in ("bits", "input_bits", "output_bits"):
        device[name] = quantization.validate_bits(device[name], name)
    device["periphery"] = periphery_lib.serialize(periphery_lib.get(device["periphery"]))
    _check_supported(model, skip_unsupported)

    def clone_layer(layer):
        target = _device_class(layer)
        if target is None:
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        config.update(device)
        return target.from_config(config)

    return clone_with_weights(model, clone_layer)[0]


def unsupported_layers(model):
    """The layers of `model` (nested ones too) that hold weights `convert` cannot put on the device."""
    return [
        layer
        for layer in walk_layers(model)
        if not isinstance(layer, keras.Model)
        and _device_class(layer) is None
        and layer.weights
        and not isinstance(layer, _digital_layers())
    ]


def _check_supported(model, skip_unsupported):
    unsupported = unsupported_layers(model)
    if not unsupported:
        return
    names = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in unsupported)
    supported = ", ".join(cls.__name__ for cls in REPLACEMENTS)
    if not skip_unsupported:
        raise ValueError(
            f"convert() cannot put these layers of {model.name!r} on the device, and they hold "
            f"weights: {names}. Only {supported} layers (and ReRAM layers) run on the crossbar. "
            "Pass skip_unsupported=True to keep them as they are (digital, without drift)."
        )
    warnings.warn(
        f"convert() keeps these layers of {model.name!r} as they are (digital, without drift): "
        f"{names}. Only {supported} layers run on the crossbar.",
        UserWarning,
        stacklevel=3,
    )


def _digital_layers():
    """Layers with weights that are the chip's digital periphery: normalization, PReLU."""
    names = (
        "BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization",
        "RMSNormalization", "UnitNormalization", "PReLU",
    )
    return tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


def to_keras(model):
    """Returns a copy of `model` with every ReRAM layer replaced by its plain Keras layer.

    The programmed weights are copied; device settings and state are dropped.
    """
    _check_model(model, "to_keras")

    def clone_layer(layer):
        if isinstance(layer, DeviceLayerMixin):
            parent = _keras_class(layer)
            config = {k: v for k, v in layer.get_config().items() if k not in DEVICE_ARGS}
            return parent.from_config(config)
        return layer.__class__.from_config(layer.get_config())

    return clone_with_weights(model, clone_layer)[0]


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
