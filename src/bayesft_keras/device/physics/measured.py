"""Measured devices: phase-change memory (`PCMLikeNoise`) and CMO/HfOx ReRAM (`ReRamCMONoise`)."""

import keras
from keras import ops

from bayesft_keras.device import conductance as conductance_lib
from bayesft_keras.device.noise import check_finite
from bayesft_keras.device.noise import check_in_range
from bayesft_keras.device.noise import normal_like
from bayesft_keras.device.physics.base import INF
from bayesft_keras.device.physics.base import PACKAGE
from bayesft_keras.device.physics.base import ConductanceNoise
from bayesft_keras.device.physics.base import cast
from bayesft_keras.device.physics.base import check_coefficients
from bayesft_keras.device.physics.base import polynomial_sigma


@keras.saving.register_keras_serializable(package=PACKAGE)
class PCMLikeNoise(ConductanceNoise):
    """Phase-change memory, as measured: programming noise, drift and 1/f noise.

    With `g = G_T / g_max` (`g_max` of the mapping; clipped below at 1e-7):

    - programming: `G_p = max(G_T + s_p * sigma_p * n1, 0)`,
      `sigma_p = (0.26348 + 1.9650 g - 1.1731 g^2) * g_max / 25` uS;
    - drift exponent, per device, fixed at programming:
      `mu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)`,
      `s = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)`,
      `nu = s_d * |mu + s * n2|`;
    - drift: `G_d = G_p * ((t + t0) / t0)^(-nu)`;
    - 1/f read noise accumulated up to `t`:
      `Q = min(0.0088 / max((|G_p| / g_max)^0.65, 1e-3), 0.2)`,
      `G = max(G_d + s_r * |G_d| * Q * sqrt(ln((t + t0 + t_read) / (2 t_read))) * n3, 0)`.

    Source: Nandakumar et al., "Phase-change memory models for deep learning
    training and inference", ICECS 2019; the constants of aihwkit's
    `PCMLikeNoiseModel` (aihwkit 1.1.0), whose conventions are kept: `t`
    is aihwkit's `t_inference` (`t = 0` is the end of programming, the
    first read is `t0` later), and the 1/f noise is part of the chip at
    time `t` (drawn once per chip, not per read).

    Args:
        prog_noise_scale, read_noise_scale, drift_scale: strengths `s_p`,
            `s_r`, `s_d` (1: the measured device), >= 0.
        t: time of inference since programming, s, >= 0.
        t0: time of the first read after programming, s, > 0 (20 s).
        t_read: read duration of the 1/f fit, s, > 0 (250 ns).
        prog_coeff: the programming-noise polynomial, uS at g_max = prog_coeff_g_max_reference.
        prog_coeff_g_max_reference: uS, > 0 (25).
        mapping: the conductance mapping (default: aihwkit's,
            `DifferentialPair(g_min=0, g_max=25)`).
        remap: map the programmed weights to conductances again before the
            drift, as aihwkit's `apply_drift_noise` does (a new scale, and
            the idle device of a pair back at `g_min`); False (default):
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
        _set_strengths(self, cls, prog_noise_scale, read_noise_scale, drift_scale, t)
        self.t0 = check_in_range("t0", t0, 1e-30, INF, cls)
        self.t_read = check_in_range("t_read", t_read, 1e-30, INF, cls)
        self.prog_coeff = check_coefficients("prog_coeff", prog_coeff, cls)
        self.prog_coeff_g_max_reference = check_in_range(
            "prog_coeff_g_max_reference", prog_coeff_g_max_reference, 1e-12, INF, cls
        )

    def programming_params(self, params):
        # Right after programming: no drift and no accumulated 1/f noise yet.
        params = list(params)
        params[1], params[3] = 0.0, 0.0
        return params

    def program(self, g_target, seed, params):
        s_p = cast(params[0], g_target.dtype)
        sigma = polynomial_sigma(
            g_target, self.prog_coeff, self.mapping.g_max, self.prog_coeff_g_max_reference
        )
        return ops.relu(g_target + s_p * sigma * normal_like(g_target, seed))

    def drift_exponents(self, g_target, seed, params):
        dtype = g_target.dtype
        log_g = ops.log(ops.maximum(ops.abs(ops.stop_gradient(g_target)) / self.mapping.g_max, 1e-7))
        mu = ops.clip(-0.0155 * log_g + 0.0244, 0.049, 0.1)
        spread = ops.clip(-0.0125 * log_g - 0.0059, 0.008, 0.045)
        return cast(params[2], dtype) * ops.abs(mu + spread * normal_like(g_target, seed))

    def drift(self, g_prog, g_target, seed, params):
        dtype = g_prog.dtype
        nu = self.drift_exponents(g_target, seed, params)
        t = ops.maximum(cast(params[3], dtype), 0.0) + self.t0
        g_drift = g_prog * ops.exp(-nu * ops.log(t / self.t0))
        relative = ops.maximum((ops.abs(ops.stop_gradient(g_prog)) / self.mapping.g_max) ** 0.65, 1e-3)
        q_s = ops.minimum(0.0088 / relative, 0.2)
        sigma = q_s * ops.sqrt(ops.log((t + self.t_read) / (2.0 * self.t_read)))
        noise = cast(params[1], dtype) * ops.abs(g_drift) * sigma * normal_like(g_prog, seed)
        return ops.relu(g_drift + noise)


# aihwkit's ReRamCMONoiseModel programming-noise fits, sigma = c0 + c1 * G (uS),
# for the program-verify acceptance ranges of 0.2 % and 2 % of the target.
_CMO_PROG_COEFF = {0.2: (0.00081107, 0.00106879), 2.0: (0.0112185391, 0.01129027418)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReRamCMONoise(ConductanceNoise):
    """Conductive-metal-oxide (CMO)/HfOx ReRAM, as measured: programming noise and relaxation.

    One device per weight (`SingleDevice` mapping, 9 to 88.2 uS). With `G`
    in uS and `t` in s:

    - programming: `G_p = G_T + s_p * (c0 + c1 G_T) * n1`, `(c0, c1)` the
      fit for the program-verify acceptance range: 0.2 %:
      (0.00081107, 0.00106879), 2 %: (0.0112185391, 0.01129027418);
    - relaxation (independent of G), for `t > 0`:
      `G_r = G_p + s_d * (m ln t + (a ln t + b) * n2)`, m = -0.08900206,
      a = 0.04201137, b = 0.41183342;
    - read noise accumulated up to `t`:
      `G = clip(G_r + s_r * K log10(G_r) sqrt(ln((t + t_read) / (2 t_read))) * n3, g_min, g_max)`,
      K = 0.0277316483, t_read = 1 us. At `t = 0`: `G = G_p`.

    Source: Falcone et al., IBM Research Europe - Zurich, statistical
    characterization of analog filamentary CMO/HfOx ReRAM; the formulas and
    constants of aihwkit's `ReRamCMONoiseModel` (aihwkit 1.1.0).

    Args:
        prog_noise_scale, read_noise_scale, drift_scale: strengths, >= 0.
        t: time of inference since programming, s, >= 0.
        acceptance_range: 0.2 or 2 (percent): which programming fit.
        prog_coeff: `(c0, c1)` instead of the acceptance range's fit.
        decay_mean: `m`; decay_std: `(a, b)`; read_k: `K`; t_read: s.
        mapping: the conductance mapping (default `SingleDevice(9, 88.2)`).
        remap: map the programmed weights to conductances again before the
            drift, as aihwkit's `apply_drift_noise` does (a new scale, and
            the idle device of a pair back at `g_min`); False (default):
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
        _set_strengths(self, cls, prog_noise_scale, read_noise_scale, drift_scale, t)
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
        self.prog_coeff = check_coefficients("prog_coeff", prog_coeff, cls, length=2)
        self.decay_mean = check_finite("decay_mean", decay_mean, cls)
        self.decay_std = check_coefficients("decay_std", decay_std, cls, length=2)
        self.read_k = check_finite("read_k", read_k, cls)
        self.t_read = check_in_range("t_read", t_read, 1e-30, INF, cls)

    def program(self, g_target, seed, params):
        c0, c1 = self.prog_coeff
        sigma = c0 + c1 * ops.stop_gradient(g_target)
        return g_target + cast(params[0], g_target.dtype) * sigma * normal_like(g_target, seed)

    def drift(self, g_prog, g_target, seed, params):
        dtype = g_prog.dtype
        t = ops.maximum(cast(params[3], dtype), 0.0)
        log_t = ops.log(ops.maximum(t, 1e-30))
        s_d = cast(params[2], dtype)
        a, b = self.decay_std
        g_relax = g_prog + s_d * (self.decay_mean * log_t + (a * log_t + b) * normal_like(g_prog, seed))
        accumulated = ops.sqrt(ops.relu(ops.log((t + self.t_read) / (2.0 * self.t_read))))
        sigma_read = self.read_k * ops.log10(ops.maximum(ops.stop_gradient(g_relax), 1e-30)) * accumulated
        g = g_relax + cast(params[1], dtype) * sigma_read * normal_like(g_prog, seed)
        g = ops.clip(g, self.mapping.g_min, self.mapping.g_max)
        return ops.where(t > 0, g, g_prog)


def _set_strengths(model, cls, prog_noise_scale, read_noise_scale, drift_scale, t):
    # The swept parameters both measured models share: three strengths and the time.
    model.prog_noise_scale = check_in_range("prog_noise_scale", prog_noise_scale, 0.0, INF, cls)
    model.read_noise_scale = check_in_range("read_noise_scale", read_noise_scale, 0.0, INF, cls)
    model.drift_scale = check_in_range("drift_scale", drift_scale, 0.0, INF, cls)
    model.t = check_in_range("t", t, 0.0, INF, cls)
