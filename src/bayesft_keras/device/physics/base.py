"""The base of the conductance models, the generic ones, and read noise.

See `bayesft_keras.device.physics` for the whole picture.
"""

import math

import keras
from keras import ops

from bayesft_keras.device import conductance as conductance_lib
from bayesft_keras.device.noise import DeviceNoise
from bayesft_keras.device.noise import check_in_range
from bayesft_keras.device.noise import max_abs
from bayesft_keras.device.noise import normal_like
from bayesft_keras.device.seeds import as_stream

PACKAGE = "bayesft_keras"
INF = float("inf")


def cast(value, dtype):
    return ops.cast(value, dtype)


def check_coefficients(name, values, cls, length=None):
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` of {cls} must be a list of numbers. Received: {name}={values!r}"
        ) from None
    if not values or (length is not None and len(values) != length) or not all(math.isfinite(v) for v in values):
        allowed = f"{length} finite numbers" if length else "a non-empty list of finite numbers"
        raise ValueError(f"`{name}` of {cls} must be {allowed}. Received: {name}={list(values)!r}")
    return values


class ConductanceNoise(DeviceNoise):
    """Base class of the models that act on conductances.

    `apply` maps the weights to conductances with `mapping`, runs
    `program` then `drift` on every device, and maps back. Subclasses list
    their swept parameters in `param_names` (strengths and time) and their
    fixed constants in `constant_names`.
    """

    constant_names = ()
    # Mapping of a model built without one.
    default_mapping = conductance_lib.DifferentialPair
    # The weights round-trip through conductances: not bit-exact at zero strength.
    exact_identity = False

    def __init__(self, mapping=None, remap=False):
        mapping = conductance_lib.get(mapping)
        self.mapping = mapping if mapping is not None else self.default_mapping()
        if not isinstance(remap, bool):
            raise ValueError(
                f"`remap` of {type(self).__name__} must be a bool. Received: remap={remap!r}"
            )
        self.remap = remap

    # -- the device, stage by stage --------------------------------------------

    def program(self, g_target, seed, params):
        """Conductances right after programming (default: exactly the targets)."""
        return g_target

    def drift(self, g_prog, g_target, seed, params):
        """Conductances at the time `t` of the parameters (default: unchanged)."""
        return g_prog

    def apply(self, w, seed, params):
        return self._devices(w, seed, params)[0]

    def _devices(self, w, seed, params):
        """`(weights at t, targets, programmed, at_t)`: the chip, device by device."""
        seed = as_stream(seed)
        targets, info = self.mapping.to_conductances(w)
        programmed = [self.program(g, seed, params) for g in targets]
        start = programmed
        if self.remap:
            # aihwkit's `apply_drift_noise`: the programmed weights are mapped
            # again (a new scale; one device of a pair back at g_min) before drift.
            start, info = self.mapping.to_conductances(self.mapping.to_weights(programmed, info))
        at_t = [self.drift(g, g_t, seed, params) for g, g_t in zip(start, targets)]
        return self.mapping.to_weights(at_t, info), targets, programmed, at_t

    def conductances(self, w, seed=None, params=None):
        """The devices of `w`: `(targets, programmed, at_t)`, each a list of tensors.

        The draws are those of `apply(w, seed, params)` (the same seed gives
        the same devices).
        """
        params = self.params() if params is None else params
        return self._devices(ops.convert_to_tensor(w), seed, params)[1:]

    def programming_params(self, params):
        params = list(params)
        for name in self.time_params:
            params[self.param_names.index(name)] = 0.0
        return params

    # -- serialization ----------------------------------------------------------

    def get_config(self):
        config = {name: float(getattr(self, name)) for name in self.param_names}
        for name in self.constant_names:
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        config["mapping"] = conductance_lib.serialize(self.mapping)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class OnConductances(ConductanceNoise):
    """Any weight-level model of `bayesft_keras.device.noise` applied to every device's conductance.

    `G' = f(G)` for each conductance of the mapping, e.g.
    `OnConductances(LogNormalDrift(0.3), DifferentialPair(g_min=2))`: both
    devices of a pair drift by their own `exp(theta)`, so a zero weight
    (two devices at `g_min`) drifts too, unlike `LogNormalDrift` on weights.

    Args:
        noise: a `DeviceNoise` (or its config); its parameters become this
            model's parameters.
        mapping: a conductance mapping (default `DifferentialPair()`).
    """

    def __init__(self, noise, mapping=None):
        super().__init__(mapping)
        noise = keras.saving.deserialize_keras_object(noise) if isinstance(noise, dict) else noise
        if not isinstance(noise, DeviceNoise):
            raise ValueError(
                "`noise` of OnConductances must be a DeviceNoise instance, e.g. "
                f"LogNormalDrift(0.3). Received: noise={noise!r}"
            )
        self.noise = noise

    @property
    def param_names(self):
        return self.noise.param_names

    @property
    def time_params(self):
        return self.noise.time_params

    def params(self):
        return self.noise.params()

    def with_params(self, **values):
        return OnConductances(self.noise.with_params(**values), self.mapping)

    def program(self, g_target, seed, params):
        return self.noise.apply(g_target, seed, params)

    def programming_params(self, params):
        return self.noise.programming_params(params)

    def get_config(self):
        return {
            "noise": keras.saving.serialize_keras_object(self.noise),
            "mapping": conductance_lib.serialize(self.mapping),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PowerLawDrift(ConductanceNoise):
    """Conductance drift as a power law of time, one exponent per device.

    `G(t) = G(t0) * (t / t0)^(-nu)`, `nu ~ N(nu_mean, nu_std^2)` drawn per
    device once (at programming), so `log(G(t) / G(t0)) = -nu * log(t / t0)`:
    its mean is `-nu_mean * log(t / t0)` and its spread
    `nu_std * log(t / t0)`. Source: the structural-relaxation drift law of
    phase-change memory (Ielmini et al., IEEE Trans. Electron Devices 54(2),
    2007), the drift step of aihwkit's `PCMLikeNoiseModel`. For exponents
    whose mean and spread depend on G, as measured, see `PCMLikeNoise`.

    Args:
        nu: mean drift exponent, >= 0 (PCM: about 0.05).
        nu_std: spread of the exponent between devices, >= 0.
        t: time of inference since programming, s, >= t0.
        t0: time of the first read, at which `G(t0)` is the programmed
            conductance, s, > 0.
        mapping: the conductance mapping (default `DifferentialPair()`).
    """

    param_names = ("nu", "nu_std", "t")
    constant_names = ("t0",)
    time_params = ("t",)

    def __init__(self, nu=0.0, nu_std=0.0, t=1.0, t0=1.0, mapping=None):
        super().__init__(mapping)
        self.nu = check_in_range("nu", nu, 0.0, INF, "PowerLawDrift")
        self.nu_std = check_in_range("nu_std", nu_std, 0.0, INF, "PowerLawDrift")
        t0 = check_in_range("t0", t0, 0.0, INF, "PowerLawDrift")
        if t0 == 0.0:
            raise ValueError("`t0` of PowerLawDrift must be > 0 (s). Received: t0=0.0")
        self.t0 = t0
        t = check_in_range("t", t, 0.0, INF, "PowerLawDrift")
        if t < t0:
            raise ValueError(
                f"`t` of PowerLawDrift must be >= t0={t0} (s): drift is counted from the "
                f"first read at t0. Received: t={t}"
            )
        self.t = t

    def drift_exponents(self, g_target, seed, params):
        nu, nu_std, _ = params
        dtype = g_target.dtype
        return cast(nu, dtype) + cast(nu_std, dtype) * normal_like(g_target, seed)

    def drift(self, g_prog, g_target, seed, params):
        dtype = g_prog.dtype
        nu = self.drift_exponents(g_target, seed, params)
        t0 = cast(self.t0, dtype)
        # Below t0 (a switched-off layer multiplies t by 0) there is no drift.
        log_ratio = ops.log(ops.maximum(cast(params[2], dtype), t0) / t0)
        return g_prog * ops.exp(-nu * log_ratio)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PolynomialProgrammingNoise(ConductanceNoise):
    """Programming (write-verify) noise whose spread depends on the target conductance.

    `G_p = max(G_T + scale * sigma(G_T) * n, 0)`, `n ~ N(0, 1)` per device,
    `sigma(G) = (sum_i c_i (G / g_max)^i) * g_max / g_ref`: a polynomial
    fitted in uS at `g_max = g_ref`, rescaled to the mapping's `g_max`.
    Source: aihwkit's `PCMLikeNoiseModel` programming step; the default
    coefficients are its PCM fit (Nandakumar et al., ICECS 2019), in uS at
    g_ref = 25 uS.

    Args:
        scale: strength, >= 0 (1: the fit).
        coeffs: `c_0, c_1, ...`.
        g_ref: the g_max of the fit, uS, > 0.
        mapping: the conductance mapping (default `DifferentialPair()`).
    """

    param_names = ("scale",)
    constant_names = ("coeffs", "g_ref")

    def __init__(self, scale=1.0, coeffs=(0.26348, 1.9650, -1.1731), g_ref=25.0, mapping=None):
        super().__init__(mapping)
        self.scale = check_in_range("scale", scale, 0.0, INF, "PolynomialProgrammingNoise")
        self.coeffs = check_coefficients("coeffs", coeffs, "PolynomialProgrammingNoise")
        self.g_ref = check_in_range("g_ref", g_ref, 1e-12, INF, "PolynomialProgrammingNoise")

    def program(self, g_target, seed, params):
        (scale,) = params
        sigma = polynomial_sigma(g_target, self.coeffs, self.mapping.g_max, self.g_ref)
        return ops.relu(g_target + cast(scale, g_target.dtype) * sigma * normal_like(g_target, seed))


def polynomial_sigma(g, coeffs, g_max, g_ref):
    x = ops.stop_gradient(g) / cast(g_max, g.dtype)
    sigma, power = ops.zeros_like(x) + coeffs[0], ops.ones_like(x)
    for c in coeffs[1:]:
        power = power * x
        sigma = sigma + c * power
    return sigma * (g_max / g_ref)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReadNoise(DeviceNoise):
    """Read noise: every matrix-vector product sees its own fluctuation of the weights.

    `w_read = w + std * max|W| * n`, `n ~ N(0, 1)` drawn per cell and per
    forward pass (the chip `w` stays fixed). Source: aihwkit's
    `IOParameters.w_noise` with `WeightNoiseType.ADDITIVE_CONSTANT` (an
    output-referred weight noise relative to the largest weight); about 0.01
    models the short-term read noise of ReRAM (aihwkit's note on
    `ReRamCMONoiseModel`).

    Args:
        std: noise std as a fraction of `max|W|`, >= 0.
    """

    param_names = ("std",)
    has_read_noise = True

    def __init__(self, std=0.0):
        self.std = check_in_range("std", std, 0.0, INF, "ReadNoise")

    def apply(self, w, seed, params):
        return w

    def read(self, w, seed, params):
        (std,) = params
        return w + cast(std, w.dtype) * max_abs(w) * normal_like(w, seed)
