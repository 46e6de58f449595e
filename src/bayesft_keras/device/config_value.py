"""`ConfigValue`: a settings object that is its config (equality, hash, repr and `from_config`)."""


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
