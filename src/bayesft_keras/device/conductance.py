"""Conductance mappings: how a weight tensor is held by devices in [G_min, G_max].

A mapping only converts, in both directions; it adds no noise. The device
physics (`bayesft_keras.device.physics`) acts on the conductances in between, as
aihwkit keeps its conductance converters (`aihwkit.inference.converter`) apart
from its noise models. Conductances are in microsiemens (uS), as in aihwkit.

A mapping's scale follows the tensor it maps (its largest weight reaches
`g_max`), taken without gradient, so a mapping never changes what training
sees.
"""

import keras
from keras import ops

from bayesft_keras.device import config_value
from bayesft_keras.device.config_value import ConfigValue

_PACKAGE = "bayesft_keras"
_EPSILON = 1e-12


def _check_range(cls, g_min, g_max):
    values = []
    for name, value in (("g_min", g_min), ("g_max", g_max)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"`{name}` of {cls} must be a number (uS). Received: {name}={value!r}"
            ) from None
        if not value == value or value in (float("inf"), float("-inf")):
            raise ValueError(f"`{name}` of {cls} must be finite. Received: {name}={value}")
        values.append(value)
    g_min, g_max = values
    if g_min < 0:
        raise ValueError(f"`g_min` of {cls} must be >= 0 (uS). Received: g_min={g_min}")
    if g_min >= g_max:
        raise ValueError(
            f"`g_min` of {cls} must be < g_max={g_max} (uS): the devices need a range. "
            f"Received: g_min={g_min}"
        )
    return g_min, g_max


def _check_bool(cls, name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` of {cls} must be a bool. Received: {name}={value!r}")
    return value


def _reduce_axes(w, per_column):
    """Axes that share one scale: all (per tensor), or all but the last (per output column)."""
    rank = len(w.shape)
    if per_column and rank >= 2:
        return tuple(range(rank - 1))
    return None


class ConductanceMapping(ConfigValue):
    """Base class: weights <-> a list of conductance tensors of the weights' shape."""

    def to_conductances(self, w):
        """Returns `(conductances, info)`: a list of tensors, and what `to_weights` needs."""
        raise NotImplementedError

    def to_weights(self, conductances, info):
        """The weights that `conductances` represent (the inverse of `to_conductances`)."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DifferentialPair(ConductanceMapping):
    """A signed weight as a pair of devices: `w = (G+ - G-) / s`.

    `s = (g_max - g_min) / max|w|`; `G+ = g_min + s * max(w, 0)`,
    `G- = g_min + s * max(-w, 0)`: one device of the pair holds the weight,
    the other stays at `g_min`. With `g_min > 0` a zero weight is two
    devices at `g_min`, which drift independently, so it drifts too.
    Source: aihwkit's `SinglePairConductanceConverter` (same formula,
    defaults g_min = 0, g_max = 25 uS).

    Args:
        g_min: conductance of logical zero, uS, >= 0.
        g_max: conductance of the largest weight, uS, > g_min.
        per_column: one scale `s` per output column (the last axis of a
            kernel) instead of one per tensor (aihwkit: per tile).
    """

    def __init__(self, g_min=0.0, g_max=25.0, per_column=False):
        self.g_min, self.g_max = _check_range("DifferentialPair", g_min, g_max)
        self.per_column = _check_bool("DifferentialPair", "per_column", per_column)

    def to_conductances(self, w):
        axes = _reduce_axes(w, self.per_column)
        abs_max = ops.max(ops.abs(w), axis=axes, keepdims=axes is not None)
        abs_max = ops.stop_gradient(ops.maximum(abs_max, _EPSILON))
        scale = ops.cast(self.g_max - self.g_min, w.dtype) / abs_max
        g_min = ops.cast(self.g_min, w.dtype)
        scaled = w * scale
        return [g_min + ops.relu(scaled), g_min + ops.relu(-scaled)], {"scale": scale}

    def to_weights(self, conductances, info):
        g_plus, g_minus = conductances
        return (g_plus - g_minus) / info["scale"]

    def get_config(self):
        return {"g_min": self.g_min, "g_max": self.g_max, "per_column": self.per_column}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SingleDevice(ConductanceMapping):
    """One device per weight, mapped affinely: `G = g_min + s * (w - min W)`.

    `s = (g_max - g_min) / (max W - min W)`, so the smallest weight sits at
    `g_min` and the largest at `g_max`. Source: aihwkit's
    `SingleDeviceConductanceConverter` (defaults g_min = 9, g_max = 88.2 uS,
    those of the ReRAM CMO/HfOx devices).

    Args:
        g_min: conductance of the smallest weight, uS, >= 0.
        g_max: conductance of the largest weight, uS, > g_min.
        per_column: one range per output column (the last axis of a kernel).
    """

    def __init__(self, g_min=9.0, g_max=88.199997, per_column=False):
        self.g_min, self.g_max = _check_range("SingleDevice", g_min, g_max)
        self.per_column = _check_bool("SingleDevice", "per_column", per_column)

    def to_conductances(self, w):
        axes = _reduce_axes(w, self.per_column)
        keep = axes is not None
        w_min = ops.stop_gradient(ops.min(w, axis=axes, keepdims=keep))
        w_max = ops.stop_gradient(ops.max(w, axis=axes, keepdims=keep))
        scale = ops.cast(self.g_max - self.g_min, w.dtype) / ops.maximum(w_max - w_min, _EPSILON)
        g = ops.cast(self.g_min, w.dtype) + (w - w_min) * scale
        return [g], {"scale": scale, "w_min": w_min}

    def to_weights(self, conductances, info):
        (g,) = conductances
        return info["w_min"] + (g - ops.cast(self.g_min, g.dtype)) / info["scale"]

    def get_config(self):
        return {"g_min": self.g_min, "g_max": self.g_max, "per_column": self.per_column}


def get(identifier):
    """A mapping from an instance, its serialized config, or None (None is kept)."""
    return config_value.get_instance(
        identifier, ConductanceMapping, "mapping",
        "a conductance mapping (e.g. DifferentialPair(g_min=1, g_max=25))",
    )


serialize = config_value.serialize
