"""Model-level control of the simulated chip: which realization, which noise, on or off.

Every function here changes only the device-state variables of ReRAM layers
(`chip_seed`, `device_params`, `noise_enabled`); trainable weights are
never touched, and compiled models pick up the change without retracing.
"""

import contextlib

import numpy as np

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device.layers.device_layer import DeviceLayerMixin
from bayesft_keras.device.seeds import layer_seeds
from bayesft_keras.device.seeds import read_seed_base
from bayesft_keras.device.walk import walk_layers
from bayesft_keras.utils import checks


def device_layers(model):
    """The ReRAM layers of `model` that carry a noise model, in a fixed order.

    Nested models are searched too (`walk_layers`).
    """
    return [
        layer
        for layer in walk_layers(model, include_self=True)
        if isinstance(layer, DeviceLayerMixin) and layer.noise is not None and layer.built
    ]


def _require_device_layers(model):
    layers = device_layers(model)
    if not layers:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no built ReRAM layer with a "
            "noise model. Build it and give it noise, e.g. "
            "`bayesft_keras.convert(model, noise=LogNormalDrift(0.5))`."
        )
    return layers


def resample(model, seed):
    """Draws a new simulated chip: every ReRAM layer gets a new noise realization.

    The realization stays fixed for all subsequent forward passes (all batches)
    until the next `resample`. The same seed gives the same chip. Read noise
    (`ReadNoise`, ADC noise) still changes on every pass; its seeds restart
    from the chip's, so the same seed also repeats the same sequence of reads.

    Args:
        model: a model (or layer) containing ReRAM layers.
        seed: non-negative int identifying the chip.
    """
    layers = _require_device_layers(model)
    for layer, value in zip(layers, layer_seeds(seed, len(layers))):
        layer.chip_seed.assign(value)
        if layer.has_read_noise:
            layer.read_seed.assign(read_seed_base(value))


@contextlib.contextmanager
def chip(model, seed):
    """Context manager: evaluate `model` as chip `seed`, then restore the previous chip."""
    layers = _require_device_layers(model)
    with _restored([layer.chip_seed for layer in layers]):
        resample(model, seed)
        yield model


def set_noise_enabled(model, enabled):
    """Switches device noise on or off in every ReRAM layer (quantization stays)."""
    checks.boolean("enabled", enabled)
    for layer in device_layers(model):
        layer.noise_enabled.assign(1.0 if enabled else 0.0)


@contextlib.contextmanager
def noise_off(model):
    """Context manager: clean (noise-free) evaluation, then restore the previous state."""
    with _restored([layer.noise_enabled for layer in device_layers(model)]):
        set_noise_enabled(model, False)
        yield model


@contextlib.contextmanager
def _restored(variables):
    """Restores the values of `variables` on exit."""
    saved = [variable.numpy() for variable in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def set_noise(model, noise):
    """Gives every ReRAM layer new noise parameter values.

    `noise` must have the structure the layers were built with (same classes,
    same parameters); only the values change, so compiled functions stay valid.
    To change the structure, rebuild with `bayesft_keras.device.convert`.
    """
    noise = noise_lib.get(noise)
    for layer in _require_device_layers(model):
        if noise is None or _structure(noise) != _structure(layer.noise):
            raise ValueError(
                f"`noise` must have the structure of layer {layer.name!r}'s noise "
                f"{layer.noise!r}. Received: noise={noise!r}. Use "
                "`bayesft_keras.convert(model, noise=...)` to change the structure."
            )
        layer.noise = noise
        layer.device_params.assign(np.asarray(noise.params(), dtype="float32"))


def set_noise_params(model, **values):
    """Sets named noise parameters (e.g. `sigma=0.8`) in every ReRAM layer."""
    for layer in _require_device_layers(model):
        set_noise_layer = layer.noise.with_params(**values)
        layer.noise = set_noise_layer
        layer.device_params.assign(np.asarray(set_noise_layer.params(), dtype="float32"))


def _structure(noise):
    if isinstance(noise, noise_lib.Compose):
        return ("Compose", tuple(_structure(m) for m in noise.models))
    return (type(noise).__name__, tuple(noise.param_names))
