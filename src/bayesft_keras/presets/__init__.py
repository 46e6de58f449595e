"""The TOML presets that ship with the package: `tuners/` (searches), `devices/` (device models).

They are package data, read through `importlib.resources`, so that an installed
wheel finds them from any working directory. In a clone of the repository the
top-level `tuners/` and `devices/` are links to these folders, so that paths such
as `--preset tuners/quick.toml` keep working. The readers are
`bayesft_keras.tuning.config.load_preset` and
`bayesft_keras.device.presets.load_device`.
"""

from importlib import resources

TUNERS = "tuners"
DEVICES = "devices"
_KINDS = (TUNERS, DEVICES)


def folder(kind):
    """The folder of the shipped presets of `kind` ("tuners" or "devices"), as a `Traversable`."""
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {list(_KINDS)}. Received: kind={kind!r}")
    return resources.files(__name__) / kind


def names(kind):
    """The names of the shipped presets of `kind`, sorted (file names without `.toml`)."""
    return sorted(p.name[: -len(".toml")] for p in folder(kind).iterdir() if p.name.endswith(".toml") and p.is_file())


def find(kind, name):
    """The shipped preset file `<name>.toml` of `kind` (a `Traversable`), or None."""
    candidate = folder(kind) / f"{name}.toml"
    return candidate if candidate.is_file() else None
