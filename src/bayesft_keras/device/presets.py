"""Device presets: TOML files shipped in the package (`bayesft_keras/presets/devices/`, linked as
the top-level `devices/` of a clone), one device each.

A preset names a device model (`[noise]`, built from its `class` and
arguments; nested tables with a `class` are built the same way, e.g. a
`mapping`, or the `models` of a `Compose`), an optional `[periphery]`,
the parameter a drift report sweeps (`param`), its default `values` (a
list, or `{start, stop, step}` with stop included) and the value the tuner's
objective uses (`target`; none: the tuning preset's `sigma`). Selected
with `--device` in `bayesft-keras tune` and `evaluate`; `lognormal`
(the paper's model) is the default.
"""

import dataclasses
import tomllib
from pathlib import Path

import numpy as np

from bayesft_keras import presets as shipped
from bayesft_keras.device import conductance
from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import periphery as periphery_lib
from bayesft_keras.device import physics

DEFAULT_DEVICE = "lognormal"

_CLASSES = {
    "LogNormalDrift": noise_lib.LogNormalDrift,
    "ProgrammingNoise": noise_lib.ProgrammingNoise,
    "StuckAtFaults": noise_lib.StuckAtFaults,
    "Compose": noise_lib.Compose,
    "DifferentialPair": conductance.DifferentialPair,
    "SingleDevice": conductance.SingleDevice,
    **physics.DEVICE_MODELS,
}


@dataclasses.dataclass(frozen=True)
class DevicePreset:
    """A device: its noise model, periphery and default sweep."""

    name: str
    description: str
    noise: object
    periphery: object = None
    param: str | None = None
    values: tuple | None = None
    target: float | None = None

    @property
    def is_default(self):
        return self.name == DEFAULT_DEVICE


def available_devices():
    """The names of the shipped device presets (`bayesft_keras/presets/devices/*.toml`)."""
    return shipped.names(shipped.DEVICES)


def find_device(name_or_path):
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"Device preset file not found: {name_or_path}")
        return path
    candidate = shipped.find(shipped.DEVICES, name_or_path)
    if candidate is not None:
        return candidate
    raise ValueError(
        f"`device` must be a .toml path or one of {available_devices()}. "
        f"Received: device={str(name_or_path)!r}"
    )


def load_device(name_or_path=DEFAULT_DEVICE):
    """Reads a device preset (a shipped preset's name, see `available_devices`, or a path to a TOML
    file)."""
    path = find_device(name_or_path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"Cannot read device preset {str(path)!r}: {e}") from None
    unknown = sorted(set(raw) - {"name", "description", "param", "values", "target", "noise", "periphery"})
    if unknown:
        raise ValueError(f"Device preset {str(path)!r}: unknown key(s) {unknown}")
    if not isinstance(raw.get("noise"), dict):
        raise ValueError(f"Device preset {str(path)!r} needs a [noise] table with a `class`.")
    try:
        noise = build(raw["noise"])
        periphery = periphery_lib.Periphery(**raw["periphery"]) if "periphery" in raw else None
        values = _values(raw.get("values"))
        param = raw.get("param")
        if param is not None:
            if param not in noise.param_names:
                raise ValueError(
                    f"`param` must be a parameter of {type(noise).__name__}: one of "
                    f"{list(noise.param_names)}. Received: param={param!r}"
                )
            for value in values or ():
                noise.with_params(**{param: value})
        target = raw.get("target")
        if target is not None:
            target = float(target)
            if param is None:
                raise ValueError(f"`target` needs `param`. Received: target={target}")
            noise.with_params(**{param: target})
    except (TypeError, ValueError) as e:
        raise ValueError(f"Invalid device preset {str(path)!r}: {e}") from None
    return DevicePreset(
        name=raw.get("name", path.stem),
        description=raw.get("description", ""),
        noise=noise,
        periphery=periphery,
        param=param,
        values=values,
        target=target,
    )


def build(table):
    """An object from a table `{"class": name, **arguments}` (nested tables with a class too)."""
    if not isinstance(table, dict) or "class" not in table:
        raise ValueError(f"Expected a table with a `class` key. Received: {table!r}")
    table = dict(table)
    name = table.pop("class")
    if name not in _CLASSES:
        raise ValueError(f"`class` must be one of {sorted(_CLASSES)}. Received: class={name!r}")
    args = {}
    for key, value in table.items():
        if isinstance(value, dict) and "class" in value:
            value = build(value)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            value = [build(v) for v in value]
        args[key] = value
    return _CLASSES[name](**args)


def tuning_device(config):
    """`(noise, periphery, param, values)` of `config.device` for a search.

    The noise is the device's at the objective's value `config.sigma` of
    its swept parameter `param`; `values` are its report values. The
    default device gives exactly the paper's `LogNormalDrift(config.sigma)`
    (and None for the rest: the search's own sigma sweep).
    """
    device = getattr(config, "device", DEFAULT_DEVICE)
    if device == DEFAULT_DEVICE:
        return noise_lib.LogNormalDrift(config.sigma), None, None, None
    preset = load_device(device)
    param = preset.param
    if param is None:
        raise ValueError(f"Device preset {preset.name!r} names no `param` to tune at.")
    return preset.noise.with_params(**{param: config.sigma}), preset.periphery, param, preset.values


def _values(spec):
    if spec is None:
        return None
    if isinstance(spec, dict):
        if set(spec) != {"start", "stop", "step"} or not spec["step"] > 0 or spec["stop"] < spec["start"]:
            raise ValueError(
                "`values` must be a list of numbers or {start, stop, step} with start <= stop and "
                f"step > 0. Received: values={spec!r}"
            )
        count = int(np.floor((spec["stop"] - spec["start"]) / spec["step"] + 1e-6)) + 1
        return tuple(np.round(spec["start"] + spec["step"] * np.arange(count), 10).tolist())
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"`values` must be a non-empty list of numbers. Received: values={spec!r}")
    return tuple(float(v) for v in spec)
