"""Device physics on conductances: programming, drift over time, read noise.

Where `bayesft_keras.device.noise` perturbs weights (the BayesFT abstraction), the
models here follow a weight onto its devices through a conductance mapping
(`bayesft_keras.device.conductance`), act on each device's conductance G (in uS), and
map back. One small class per physical effect, or per published device model,
with its formula and source. Mapping and noise stay apart, as in aihwkit
(`aihwkit.inference.converter` / `aihwkit.inference.noise`).

Time: ``t`` is the time of inference in seconds since programming ended. A
chip is programmed once: its programming noise and drift coefficients depend
on its seed only, never on ``t``, so the same chip read at several times is
one device trajectory (`evaluate_drift(..., param="t", values=[...])` reads
the same chips at every time).

Chip and read: `apply` gives the chip (programming, drift, the noise
accumulated up to ``t``): drawn once per chip, fixed for every forward pass.
`read` is the fluctuation of each matrix-vector product, drawn fresh on every
pass (`ReadNoise`; the ADC's noise is in `bayesft_keras.device.periphery`).
"""

import keras
from keras import ops

from bayesft_keras.device import conductance as conductance_lib
from bayesft_keras.device.noise import DeviceNoise
from bayesft_keras.device.noise import _check_in_range
from bayesft_keras.device.seeds import as_stream

_PACKAGE = "bayesft_keras"
_INF = float("inf")


def _normal(x, seed):
    return keras.random.normal(ops.shape(x), dtype=x.dtype, seed=seed)


def _cast(value, dtype):
    return ops.cast(value, dtype)


def _check_coefficients(name, values, cls, length=None):
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` of {cls} must be a list of numbers. Received: {name}={values!r}"
        ) from None
    if not values or (length is not None and len(values) != length):
        allowed = f"{length} numbers" if length else "a non-empty list of numbers"
        raise ValueError(f"`{name}` of {cls} must be {allowed}. Received: {name}={list(values)!r}")
    return values


class ConductanceNoise(DeviceNoise):
    """Base class of the models that act on conductances.

    ``apply`` maps the weights to conductances with ``mapping``, runs
    `program` then `drift` on every device, and maps back. Subclasses list
    their swept parameters in ``param_names`` (strengths and time) and their
    fixed constants in ``constant_names``.
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
        """Conductances at the time ``t`` of the parameters (default: unchanged)."""
        return g_prog

    def apply(self, w, seed, params):
        return self._devices(w, seed, params)[0]

    def _devices(self, w, seed, params):
        """``(weights at t, targets, programmed, at_t)``: the chip, device by device."""
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
        """The devices of ``w``: ``(targets, programmed, at_t)``, each a list of tensors.

        The draws are those of ``apply(w, seed, params)`` (the same seed gives
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class OnConductances(ConductanceNoise):
    """Any weight-level model of `bayesft_keras.device.noise` applied to every device's conductance.

    ``G' = f(G)`` for each conductance of the mapping, e.g.
    ``OnConductances(LogNormalDrift(0.3), DifferentialPair(g_min=2))``: both
    devices of a pair drift by their own ``exp(theta)``, so a zero weight
    (two devices at ``g_min``) drifts too, unlike ``LogNormalDrift`` on weights.

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PowerLawDrift(ConductanceNoise):
    """Conductance drift as a power law of time, one exponent per device.

    ``G(t) = G(t0) * (t / t0)^(-nu)``, ``nu ~ N(nu_mean, nu_std^2)`` drawn per
    device once (at programming), so ``log(G(t) / G(t0)) = -nu * log(t / t0)``:
    its mean is ``-nu_mean * log(t / t0)`` and its spread
    ``nu_std * log(t / t0)``. Source: the structural-relaxation drift law of
    phase-change memory (Ielmini et al., IEEE Trans. Electron Devices 54(2),
    2007), the drift step of aihwkit's ``PCMLikeNoiseModel``. For exponents
    whose mean and spread depend on G, as measured, see `PCMLikeNoise`.

    Args:
        nu: mean drift exponent, >= 0 (PCM: about 0.05).
        nu_std: spread of the exponent between devices, >= 0.
        t: time of inference since programming, s, >= t0.
        t0: time of the first read, at which ``G(t0)`` is the programmed
            conductance, s, > 0.
        mapping: the conductance mapping (default `DifferentialPair()`).
    """

    param_names = ("nu", "nu_std", "t")
    constant_names = ("t0",)
    time_params = ("t",)

    def __init__(self, nu=0.0, nu_std=0.0, t=1.0, t0=1.0, mapping=None):
        super().__init__(mapping)
        self.nu = _check_in_range("nu", nu, 0.0, _INF, "PowerLawDrift")
        self.nu_std = _check_in_range("nu_std", nu_std, 0.0, _INF, "PowerLawDrift")
        t0 = _check_in_range("t0", t0, 0.0, _INF, "PowerLawDrift")
        if t0 == 0.0:
            raise ValueError("`t0` of PowerLawDrift must be > 0 (s). Received: t0=0.0")
        self.t0 = t0
        t = _check_in_range("t", t, 0.0, _INF, "PowerLawDrift")
        if t < t0:
            raise ValueError(
                f"`t` of PowerLawDrift must be >= t0={t0} (s): drift is counted from the "
                f"first read at t0. Received: t={t}"
            )
        self.t = t

    def drift_exponents(self, g_target, seed, params):
        nu, nu_std, _ = params
        dtype = g_target.dtype
        return _cast(nu, dtype) + _cast(nu_std, dtype) * _normal(g_target, seed)

    def drift(self, g_prog, g_target, seed, params):
        dtype = g_prog.dtype
        nu = self.drift_exponents(g_target, seed, params)
        t0 = _cast(self.t0, dtype)
        # Below t0 (a switched-off layer multiplies t by 0) there is no drift.
        log_ratio = ops.log(ops.maximum(_cast(params[2], dtype), t0) / t0)
        return g_prog * ops.exp(-nu * log_ratio)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PolynomialProgrammingNoise(ConductanceNoise):
    """Programming (write-verify) noise whose spread depends on the target conductance.

    ``G_p = max(G_T + scale * sigma(G_T) * n, 0)``, ``n ~ N(0, 1)`` per device,
    ``sigma(G) = (sum_i c_i (G / g_max)^i) * g_max / g_ref``: a polynomial
    fitted in uS at ``g_max = g_ref``, rescaled to the mapping's ``g_max``.
    Source: aihwkit's ``PCMLikeNoiseModel`` programming step; the default
    coefficients are its PCM fit (Nandakumar et al., ICECS 2019), in uS at
    g_ref = 25 uS.

    Args:
        scale: strength, >= 0 (1: the fit).
        coeffs: ``c_0, c_1, ...``.
        g_ref: the g_max of the fit, uS, > 0.
        mapping: the conductance mapping (default `DifferentialPair()`).
    """

    param_names = ("scale",)
    constant_names = ("coeffs", "g_ref")

    def __init__(self, scale=1.0, coeffs=(0.26348, 1.9650, -1.1731), g_ref=25.0, mapping=None):
        super().__init__(mapping)
        self.scale = _check_in_range("scale", scale, 0.0, _INF, "PolynomialProgrammingNoise")
        self.coeffs = _check_coefficients("coeffs", coeffs, "PolynomialProgrammingNoise")
        self.g_ref = _check_in_range("g_ref", g_ref, 1e-12, _INF, "PolynomialProgrammingNoise")

    def program(self, g_target, seed, params):
        (scale,) = params
        sigma = _polynomial_sigma(g_target, self.coeffs, self.mapping.g_max, self.g_ref)
        return ops.relu(g_target + _cast(scale, g_target.dtype) * sigma * _normal(g_target, seed))


def _polynomial_sigma(g, coeffs, g_max, g_ref):
    x = ops.stop_gradient(g) / _cast(g_max, g.dtype)
    sigma, power = ops.zeros_like(x) + coeffs[0], ops.ones_like(x)
    for c in coeffs[1:]:
        power = power * x
        sigma = sigma + c * power
    return sigma * (g_max / g_ref)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PCMLikeNoise(ConductanceNoise):
    """Phase-change memory, as measured: programming noise, drift and 1/f noise.

    With ``g = G_T / g_max`` (``g_max`` of the mapping; clipped below at 1e-7):

    - programming: ``G_p = max(G_T + s_p * sigma_p * n1, 0)``,
      ``sigma_p = (0.26348 + 1.9650 g - 1.1731 g^2) * g_max / 25`` uS;
    - drift exponent, per device, fixed at programming:
      ``mu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)``,
      ``s = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)``,
      ``nu = s_d * |mu + s * n2|``;
    - drift: ``G_d = G_p * ((t + t0) / t0)^(-nu)``;
    - 1/f read noise accumulated up to ``t``:
      ``Q = min(0.0088 / max((|G_p| / g_max)^0.65, 1e-3), 0.2)``,
      ``G = max(G_d + s_r * |G_d| * Q * sqrt(ln((t + t0 + t_read) / (2 t_read))) * n3, 0)``.

    Source: Nandakumar et al., "Phase-change memory models for deep learning
    training and inference", ICECS 2019; the constants of aihwkit's
    ``PCMLikeNoiseModel`` (aihwkit 1.1.0), whose conventions are kept: ``t``
    is aihwkit's ``t_inference`` (``t = 0`` is the end of programming, the
    first read is ``t0`` later), and the 1/f noise is part of the chip at
    time ``t`` (drawn once per chip, not per read).

    Args:
        prog_noise_scale, read_noise_scale, drift_scale: strengths ``s_p``,
            ``s_r``, ``s_d`` (1: the measured device), >= 0.
        t: time of inference since programming, s, >= 0.
        t0: time of the first read after programming, s, > 0 (20 s).
        t_read: read duration of the 1/f fit, s, > 0 (250 ns).
        prog_coeff: the programming-noise polynomial, uS at g_max = prog_coeff_g_max_reference.
        prog_coeff_g_max_reference: uS, > 0 (25).
        mapping: the conductance mapping (default: aihwkit's,
            `DifferentialPair(g_min=0, g_max=25)`).
        remap: map the programmed weights to conductances again before the
            drift, as aihwkit's ``apply_drift_noise`` does (a new scale, and
            the idle device of a pair back at ``g_min``); False (default):
            every device drifts from its own programmed conductance.
    """

    param_names = ("prog_noise_scale", "read_noise_scale", "drift_scale", "t")
    constant_names = ("t0", "t_read", "prog_coeff", "prog_coeff_g_max_reference", "remap")
    time_params = ("t",)

    def __init__(
        self,
        prog_noise_scale=1.0,
        read_noise_scale=1.0,
        drift_scale=1.0,
        t=0.0,
        t0=20.0,
        t_read=250e-9,
        prog_coeff=(0.26348, 1.9650, -1.1731),
        prog_coeff_g_max_reference=25.0,
        mapping=None,
        remap=False,
    ):
        super().__init__(mapping, remap)
        cls = "PCMLikeNoise"
        self.prog_noise_scale = _check_in_range("prog_noise_scale", prog_noise_scale, 0.0, _INF, cls)
        self.read_noise_scale = _check_in_range("read_noise_scale", read_noise_scale, 0.0, _INF, cls)
        self.drift_scale = _check_in_range("drift_scale", drift_scale, 0.0, _INF, cls)
        self.t = _check_in_range("t", t, 0.0, _INF, cls)
        self.t0 = _check_in_range("t0", t0, 1e-30, _INF, cls)
        self.t_read = _check_in_range("t_read", t_read, 1e-30, _INF, cls)
        self.prog_coeff = _check_coefficients("prog_coeff", prog_coeff, cls)
        self.prog_coeff_g_max_reference = _check_in_range(
            "prog_coeff_g_max_reference", prog_coeff_g_max_reference, 1e-12, _INF, cls
        )

    def programming_params(self, params):
        # Right after programming: no drift and no accumulated 1/f noise yet.
        params = list(params)
        params[1], params[3] = 0.0, 0.0
        return params

    def program(self, g_target, seed, params):
        s_p = _cast(params[0], g_target.dtype)
        sigma = _polynomial_sigma(
            g_target, self.prog_coeff, self.mapping.g_max, self.prog_coeff_g_max_reference
        )
        return ops.relu(g_target + s_p * sigma * _normal(g_target, seed))

    def drift_exponents(self, g_target, seed, params):
        dtype = g_target.dtype
        log_g = ops.log(ops.maximum(ops.abs(ops.stop_gradient(g_target)) / self.mapping.g_max, 1e-7))
        mu = ops.clip(-0.0155 * log_g + 0.0244, 0.049, 0.1)
        spread = ops.clip(-0.0125 * log_g - 0.0059, 0.008, 0.045)
        return _cast(params[2], dtype) * ops.abs(mu + spread * _normal(g_target, seed))

    def drift(self, g_prog, g_target, seed, params):
        dtype = g_prog.dtype
        nu = self.drift_exponents(g_target, seed, params)
        t = ops.maximum(_cast(params[3], dtype), 0.0) + self.t0
        g_drift = g_prog * ops.exp(-nu * ops.log(t / self.t0))
        relative = ops.maximum((ops.abs(ops.stop_gradient(g_prog)) / self.mapping.g_max) ** 0.65, 1e-3)
        q_s = ops.minimum(0.0088 / relative, 0.2)
        sigma = q_s * ops.sqrt(ops.log((t + self.t_read) / (2.0 * self.t_read)))
        noise = _cast(params[1], dtype) * ops.abs(g_drift) * sigma * _normal(g_prog, seed)
        return ops.relu(g_drift + noise)


# aihwkit's ReRamCMONoiseModel programming-noise fits, sigma = c0 + c1 * G (uS),
# for the program-verify acceptance ranges of 0.2 % and 2 % of the target.
_CMO_PROG_COEFF = {0.2: (0.00081107, 0.00106879), 2.0: (0.0112185391, 0.01129027418)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReRamCMONoise(ConductanceNoise):
    """Conductive-metal-oxide (CMO)/HfOx ReRAM, as measured: programming noise and relaxation.

    One device per weight (`SingleDevice` mapping, 9 to 88.2 uS). With ``G``
    in uS and ``t`` in s:

    - programming: ``G_p = G_T + s_p * (c0 + c1 G_T) * n1``, ``(c0, c1)`` the
      fit for the program-verify acceptance range: 0.2 %:
      (0.00081107, 0.00106879), 2 %: (0.0112185391, 0.01129027418);
    - relaxation (independent of G), for ``t > 0``:
      ``G_r = G_p + s_d * (m ln t + (a ln t + b) * n2)``, m = -0.08900206,
      a = 0.04201137, b = 0.41183342;
    - read noise accumulated up to ``t``:
      ``G = clip(G_r + s_r * K log10(G_r) sqrt(ln((t + t_read) / (2 t_read))) * n3, g_min, g_max)``,
      K = 0.0277316483, t_read = 1 us. At ``t = 0``: ``G = G_p``.

    Source: Falcone et al., IBM Research Europe - Zurich, statistical
    characterization of analog filamentary CMO/HfOx ReRAM; the formulas and
    constants of aihwkit's ``ReRamCMONoiseModel`` (aihwkit 1.1.0).

    Args:
        prog_noise_scale, read_noise_scale, drift_scale: strengths, >= 0.
        t: time of inference since programming, s, >= 0.
        acceptance_range: 0.2 or 2 (percent): which programming fit.
        prog_coeff: ``(c0, c1)`` instead of the acceptance range's fit.
        decay_mean: ``m``; decay_std: ``(a, b)``; read_k: ``K``; t_read: s.
        mapping: the conductance mapping (default `SingleDevice(9, 88.2)`).
        remap: map the programmed weights to conductances again before the
            drift, as aihwkit's ``apply_drift_noise`` does (a new scale, and
            the idle device of a pair back at ``g_min``); False (default):
            every device drifts from its own programmed conductance.
    """

    param_names = ("prog_noise_scale", "read_noise_scale", "drift_scale", "t")
    constant_names = ("acceptance_range", "prog_coeff", "decay_mean", "decay_std", "read_k", "t_read", "remap")
    time_params = ("t",)
    default_mapping = conductance_lib.SingleDevice

    def __init__(
        self,
        prog_noise_scale=1.0,
        read_noise_scale=1.0,
        drift_scale=1.0,
        t=0.0,
        acceptance_range=0.2,
        prog_coeff=None,
        decay_mean=-0.08900206,
        decay_std=(0.04201137, 0.41183342),
        read_k=0.0277316483,
        t_read=1e-6,
        mapping=None,
        remap=False,
    ):
        super().__init__(mapping, remap)
        cls = "ReRamCMONoise"
        self.prog_noise_scale = _check_in_range("prog_noise_scale", prog_noise_scale, 0.0, _INF, cls)
        self.read_noise_scale = _check_in_range("read_noise_scale", read_noise_scale, 0.0, _INF, cls)
        self.drift_scale = _check_in_range("drift_scale", drift_scale, 0.0, _INF, cls)
        self.t = _check_in_range("t", t, 0.0, _INF, cls)
        if prog_coeff is None:
            try:
                acceptance_range = float(acceptance_range)
            except (TypeError, ValueError):
                acceptance_range = None
            if acceptance_range not in _CMO_PROG_COEFF:
                raise ValueError(
                    f"`acceptance_range` of {cls} must be one of {sorted(_CMO_PROG_COEFF)} (percent; "
                    f"or give `prog_coeff`). Received: acceptance_range={acceptance_range!r}"
                )
            prog_coeff = _CMO_PROG_COEFF[acceptance_range]
        self.acceptance_range = acceptance_range
        self.prog_coeff = _check_coefficients("prog_coeff", prog_coeff, cls, length=2)
        self.decay_mean = float(decay_mean)
        self.decay_std = _check_coefficients("decay_std", decay_std, cls, length=2)
        self.read_k = float(read_k)
        self.t_read = _check_in_range("t_read", t_read, 1e-30, _INF, cls)

    def program(self, g_target, seed, params):
        c0, c1 = self.prog_coeff
        sigma = c0 + c1 * ops.stop_gradient(g_target)
        return g_target + _cast(params[0], g_target.dtype) * sigma * _normal(g_target, seed)

    def drift(self, g_prog, g_target, seed, params):
        dtype = g_prog.dtype
        t = ops.maximum(_cast(params[3], dtype), 0.0)
        log_t = ops.log(ops.maximum(t, 1e-30))
        s_d = _cast(params[2], dtype)
        a, b = self.decay_std
        g_relax = g_prog + s_d * (self.decay_mean * log_t + (a * log_t + b) * _normal(g_prog, seed))
        accumulated = ops.sqrt(ops.relu(ops.log((t + self.t_read) / (2.0 * self.t_read))))
        sigma_read = self.read_k * ops.log10(ops.maximum(ops.stop_gradient(g_relax), 1e-30)) * accumulated
        g = g_relax + _cast(params[1], dtype) * sigma_read * _normal(g_prog, seed)
        g = ops.clip(g, self.mapping.g_min, self.mapping.g_max)
        return ops.where(t > 0, g, g_prog)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReadNoise(DeviceNoise):
    """Read noise: every matrix-vector product sees its own fluctuation of the weights.

    ``w_read = w + std * max|W| * n``, ``n ~ N(0, 1)`` drawn per cell and per
    forward pass (the chip ``w`` stays fixed). Source: aihwkit's
    ``IOParameters.w_noise`` with ``WeightNoiseType.ADDITIVE_CONSTANT`` (an
    output-referred weight noise relative to the largest weight); about 0.01
    models the short-term read noise of ReRAM (aihwkit's note on
    ``ReRamCMONoiseModel``).

    Args:
        std: noise std as a fraction of ``max|W|``, >= 0.
    """

    param_names = ("std",)
    has_read_noise = True

    def __init__(self, std=0.0):
        self.std = _check_in_range("std", std, 0.0, _INF, "ReadNoise")

    def apply(self, w, seed, params):
        return w

    def read(self, w, seed, params):
        (std,) = params
        w_max = ops.stop_gradient(ops.max(ops.abs(w)))
        return w + _cast(std, w.dtype) * w_max * _normal(w, seed)


DEVICE_MODELS = {
    cls.__name__: cls
    for cls in (OnConductances, PowerLawDrift, PolynomialProgrammingNoise, PCMLikeNoise, ReRamCMONoise, ReadNoise)
}

# Calendar times of a drift report (s).
SECOND, HOUR, DAY, YEAR = 1.0, 3600.0, 86400.0, 365.0 * 86400.0
