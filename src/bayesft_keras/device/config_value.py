"""`ConfigValue`: a settings object that is its config (equality, hash, repr and `from_config`).

Also `get_instance` and `serialize`, the `get` / `serialize` pair of the
device's serializable settings (noise models, conductance mappings).
"""

import keras


class ConfigValue:
    """Mixin for small serializable settings classes defined by their `get_config`."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def get_instance(identifier, base, name, what):
    """`identifier` as an instance of `base`: an instance or None is kept, a serialized config is deserialized.

    Args:
        identifier: the value received.
        base: the class the value must be an instance of.
        name: the argument's name, for the message.
        what: what the argument must be, for the message, e.g. "a DeviceNoise
            instance (e.g. LogNormalDrift(0.5))".
    """
    if identifier is None or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, base):
            return obj
    raise ValueError(
        f"`{name}` must be {what}, its serialized config, or None. Received: {name}={identifier!r}"
    )


def serialize(value):
    """The Keras serialization of `value`; None is kept."""
    return None if value is None else keras.saving.serialize_keras_object(value)
