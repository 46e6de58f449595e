"""Device physics on conductances: programming, drift over time, read noise.

Where `bayesft_keras.device.noise` perturbs weights (the BayesFT abstraction), the
models here follow a weight onto its devices through a conductance mapping
(`bayesft_keras.device.conductance`), act on each device's conductance G (in uS), and
map back. One small class per physical effect, or per published device model,
with its formula and source. Mapping and noise stay apart, as in aihwkit
(`aihwkit.inference.converter` / `aihwkit.inference.noise`).

Time: `t` is the time of inference in seconds since programming ended. A
chip is programmed once: its programming noise and drift coefficients depend
on its seed only, never on `t`, so the same chip read at several times is
one device trajectory (`evaluate_drift(..., param="t", values=[...])` reads
the same chips at every time).

Chip and read: `apply` gives the chip (programming, drift, the noise
accumulated up to `t`): drawn once per chip, fixed for every forward pass.
`read` is the fluctuation of each matrix-vector product, drawn fresh on every
pass (`ReadNoise`; the ADC's noise is in `bayesft_keras.device.periphery`).
"""

from bayesft_keras.device.physics.base import ConductanceNoise
from bayesft_keras.device.physics.base import OnConductances
from bayesft_keras.device.physics.base import PolynomialProgrammingNoise
from bayesft_keras.device.physics.base import PowerLawDrift
from bayesft_keras.device.physics.base import ReadNoise
from bayesft_keras.device.physics.measured import PCMLikeNoise
from bayesft_keras.device.physics.measured import ReRamCMONoise

DEVICE_MODELS = {
    cls.__name__: cls
    for cls in (OnConductances, PowerLawDrift, PolynomialProgrammingNoise, PCMLikeNoise, ReRamCMONoise, ReadNoise)
}

# Calendar times of a drift report (s).
SECOND, HOUR, DAY, YEAR = 1.0, 3600.0, 86400.0, 365.0 * 86400.0
