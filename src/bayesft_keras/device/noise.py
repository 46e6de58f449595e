"""Device noise models: one small class per physical effect of a ReRAM cell.

Every model maps a programmed weight tensor `w` to the weight the crossbar
actually computes with. Each parameter of a model is a *strength*: setting all
of them to zero makes the model exactly the identity, which is what lets a
layer switch noise off (or sweep a parameter) by changing variable values
instead of rebuilding the graph.

Models are serializable Keras objects, so layers that hold them save and load
with `model.save` / `keras.models.load_model`.
"""

import math

import keras
from keras import ops

from bayesft_keras.device import config_value

_PACKAGE = "bayesft_keras"


def check_in_range(name, value, low, high, cls):
    """`value` as a finite `float` in [low, high] (`high` may be inf: any finite number above `low`).

    NaN and infinities are refused whatever the bounds: a strength or a time of inf
    gives NaN weights, found only when training or scoring has run.
    """
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None:
        raise ValueError(
            f"`{name}` of {cls} must be a number. Received: {name}={value!r}"
        )
    if not math.isfinite(number) or not (low <= number <= high):
        raise ValueError(
            f"`{name}` of {cls} must be a finite number in [{low}, {high}]. "
            f"Received: {name}={number}"
        )
    return number


def check_finite(name, value, cls):
    """`value` as a finite `float` (a model constant of either sign)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"`{name}` of {cls} must be a finite number. Received: {name}={value!r}")
    return number


def max_abs(w):
    """The largest `|w|` of the tensor, a constant for the gradient (the range devices are written to)."""
    return ops.stop_gradient(ops.max(ops.abs(w)))


def normal_like(x, seed):
    """Standard normal draws of the shape and dtype of `x`."""
    return keras.random.normal(ops.shape(x), dtype=x.dtype, seed=seed)


class DeviceNoise(config_value.ConfigValue):
    """Base class of the device noise models.

    Subclasses name their parameters in `param_names`, store them as float
    attributes of the same names, and implement `apply(w, seed, params)`.
    """

    param_names = ()

    @property
    def num_params(self):
        return len(self.param_names)

    def params(self):
        """The parameter values, in the order of `param_names`."""
        return [float(getattr(self, name)) for name in self.param_names]

    def apply(self, w, seed, params):
        """Returns the noisy version of `w`.

        Args:
            w: the (quantized) weight tensor.
            seed: anything `keras.random` accepts as a seed; a
                `keras.random.SeedGenerator` gives independent draws.
            params: one scalar (Python float or tensor) per entry of
                `param_names`.
        """
        raise NotImplementedError

    # -- per-read noise and time (device physics, `bayesft_keras.device.physics`) ----

    # Parameters that are a time since programming: a sweep over one of them
    # reads the same chips at every value (`evaluate_drift`).
    time_params = ()
    # Whether `read` adds noise: the layer then draws it fresh on every pass.
    has_read_noise = False
    # Whether all-zero parameters give exactly `w` (else a switched-off layer bypasses the model).
    exact_identity = True

    def read(self, w, seed, params):
        """The noise of one read of the chip's weights `w` (drawn anew on every pass).

        `apply` gives the chip (fixed until resampled); `read` the
        fluctuation of each matrix-vector product on it. Default: none.
        """
        return w

    def programming_params(self, params):
        """`params` with every time parameter set to the end of programming (its lowest value)."""
        return list(params)

    def __call__(self, w, seed=None):
        return self.apply(w, seed, self.params())

    def with_params(self, **values):
        """A copy of this model with some parameters replaced."""
        config = self.get_config()
        unknown = set(values) - set(self.param_names)
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {sorted(unknown)} for "
                f"{type(self).__name__}; valid: {list(self.param_names)}"
            )
        config.update(values)
        return type(self).from_config(config)

    def get_config(self):
        return {name: float(getattr(self, name)) for name in self.param_names}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogNormalDrift(DeviceNoise):
    """Multiplicative log-normal conductance drift, the BayesFT model.

    `w' = w * exp(theta)`, `theta ~ N(0, sigma^2)` drawn per cell.

    The sign of `w` is kept and `E[w'] = w * exp(sigma^2 / 2)`, so drift is
    biased upwards on average (1.38x at sigma=0.8, 3.08x at sigma=1.5).

    Args:
        sigma: standard deviation of `theta`, >= 0.
    """

    param_names = ("sigma",)

    def __init__(self, sigma=0.0):
        self.sigma = check_in_range("sigma", sigma, 0.0, float("inf"), "LogNormalDrift")

    def apply(self, w, seed, params):
        (sigma,) = params
        return w * ops.exp(ops.cast(sigma, w.dtype) * normal_like(w, seed))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProgrammingNoise(DeviceNoise):
    """Additive Gaussian write noise, relative to the tensor's largest weight.

    `w' = w + std * max|W| * n`, `n ~ N(0, 1)` drawn per cell, where
    `max|W|` is taken over the whole tensor (kernel or bias) being written.

    Args:
        std: noise standard deviation as a fraction of `max|W|`, >= 0.
    """

    param_names = ("std",)

    def __init__(self, std=0.0):
        self.std = check_in_range("std", std, 0.0, float("inf"), "ProgrammingNoise")

    def apply(self, w, seed, params):
        (std,) = params
        return w + ops.cast(std, w.dtype) * max_abs(w) * normal_like(w, seed)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StuckAtFaults(DeviceNoise):
    """Cells stuck at the lowest or the highest conductance level.

    With `u ~ U[0, 1)` drawn per cell:
    `w' = 0` if `u < p_low` (stuck at zero conductance);
    `w' = sign(w) * max|W|` if `u >= 1 - p_high` (stuck at the top level);
    `w' = w` otherwise.

    Args:
        p_low: probability of a cell stuck at zero, in [0, 1].
        p_high: probability of a cell stuck at the top level, in [0, 1].
            `p_low + p_high` must not exceed 1.
    """

    param_names = ("p_low", "p_high")

    def __init__(self, p_low=0.0, p_high=0.0):
        self.p_low = check_in_range("p_low", p_low, 0.0, 1.0, "StuckAtFaults")
        self.p_high = check_in_range("p_high", p_high, 0.0, 1.0, "StuckAtFaults")
        if self.p_low + self.p_high > 1.0:
            raise ValueError(
                "`p_low + p_high` of StuckAtFaults must not exceed 1. "
                f"Received: p_low={self.p_low}, p_high={self.p_high}"
            )

    def apply(self, w, seed, params):
        p_low, p_high = (ops.cast(p, w.dtype) for p in params)
        u = keras.random.uniform(ops.shape(w), dtype=w.dtype, seed=seed)
        top = ops.sign(w) * max_abs(w)
        w = ops.where(u >= 1.0 - p_high, top, w)
        return ops.where(u < p_low, ops.zeros_like(w), w)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Compose(DeviceNoise):
    """Several effects applied in order: `w' = f_n(... f_2(f_1(w)))`.

    Parameter names are prefixed with the position of their model, e.g.
    `Compose([LogNormalDrift(0.5), StuckAtFaults(0.01)])` has parameters
    `("0.sigma", "1.p_low", "1.p_high")`.

    Args:
        models: a list of `DeviceNoise` instances (or their serialized configs).
    """

    def __init__(self, models):
        if not isinstance(models, (list, tuple)) or not models:
            raise ValueError(
                "`models` of Compose must be a non-empty list of device noise "
                f"models. Received: models={models!r}"
            )
        models = [
            keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m
            for m in models
        ]
        for m in models:
            if not isinstance(m, DeviceNoise):
                raise ValueError(
                    "Every element of `models` must be a DeviceNoise instance. "
                    f"Received: {m!r}"
                )
        self.models = list(models)

    @property
    def param_names(self):
        return tuple(f"{i}.{n}" for i, m in enumerate(self.models) for n in m.param_names)

    def params(self):
        return [p for m in self.models for p in m.params()]

    def _per_model(self, params):
        """`(model, its parameters)` for each model, `params` split in order."""
        params = list(params)
        for m in self.models:
            yield m, params[: m.num_params]
            params = params[m.num_params :]

    def apply(self, w, seed, params):
        for m, own in self._per_model(params):
            w = m.apply(w, seed, own)
        return w

    @property
    def time_params(self):
        return tuple(f"{i}.{n}" for i, m in enumerate(self.models) for n in m.time_params)

    @property
    def has_read_noise(self):
        return any(m.has_read_noise for m in self.models)

    @property
    def exact_identity(self):
        return all(m.exact_identity for m in self.models)

    def read(self, w, seed, params):
        for m, own in self._per_model(params):
            w = m.read(w, seed, own)
        return w

    def programming_params(self, params):
        return [p for m, own in self._per_model(params) for p in m.programming_params(own)]

    def with_params(self, **values):
        per_model = [dict() for _ in self.models]
        for key, value in values.items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.models):
                raise ValueError(
                    f"Unknown parameter {key!r} for Compose; valid: {list(self.param_names)}"
                )
            per_model[int(index)][name] = value
        return Compose([m.with_params(**v) for m, v in zip(self.models, per_model)])

    def get_config(self):
        return {"models": [keras.saving.serialize_keras_object(m) for m in self.models]}


def get(identifier):
    """Returns a device noise model from an instance, a config dict or None."""
    return config_value.get_instance(
        identifier, DeviceNoise, "noise", "a DeviceNoise instance (e.g. LogNormalDrift(0.5))"
    )


serialize = config_value.serialize
