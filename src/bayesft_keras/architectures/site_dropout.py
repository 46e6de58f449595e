"""`SiteDropout`: dropout whose rate is a variable, so one compiled train step serves every rate.

A search trains the same architecture with other dropout rates in every trial.
Keras's `Dropout` holds its rate as a Python float, a constant of the traced
train step: a new rate needs a new model and a new trace. `SiteDropout` keeps
the rate in a non-trainable variable that the compiled step reads, so a search
builds and compiles its model once and sets the rates per trial
(`bayesft_keras.tuning.reuse`).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bayesft_keras")
class SiteDropout(keras.layers.Layer):
    """Dropout at a searched site, with its rate held in a variable.

    In training, each unit (or, with `channelwise`, each feature map of a
    channels-last input) is kept with probability `1 - rate` and scaled by
    `1 / (1 - rate)`, as `keras.layers.Dropout` and `SpatialDropout2D` do:

        y = x * m / (1 - rate),    m ~ Bernoulli(1 - rate)

    At inference it is the identity. `set_rate` changes the rate without a
    retrace. The rate is part of the layer's config (its current value), not
    of its weights: loading weights never changes it.

    Args:
        rate: the fraction of units to drop, in [0, 1).
        channelwise: drop whole feature maps (the last axis is the channel
            axis), as `SpatialDropout2D`; False drops single units.
        seed: seed of the masks (None: a random seed).
        **kwargs: base layer keyword arguments (`name`, `dtype`).
    """

    # The evaluation's stacked chips pass (`evaluation.stacked`) may skip it.
    identity_at_inference = True

    def __init__(self, rate, channelwise=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _checked_rate(rate)
        self.channelwise = bool(channelwise)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # A tracked variable (JAX passes it into the compiled step as state), saved in the
        # config, not with the weights: a weights file (a warm start) must not carry rates.
        self._rate = keras.Variable(self.rate, trainable=False, dtype="float32", name="rate")
        self.supports_masking = True
        self.built = True

    def set_rate(self, rate):
        """Sets the rate used by the next training step (no retrace)."""
        rate = _checked_rate(rate)
        self.rate = rate
        self._rate.assign(rate)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        shape = ops.shape(inputs)
        if self.channelwise:
            shape = (shape[0],) + (1,) * (len(inputs.shape) - 2) + (shape[-1],)
        uniform = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        rate = ops.cast(self._rate, inputs.dtype)
        keep = uniform >= rate  # P(keep) = 1 - rate
        return ops.where(keep, inputs / (1.0 - rate), ops.zeros_like(inputs))

    # The rate variable is state of the search, like a seed, not a weight: it is not counted,
    # not in `get_weights`, and not placed on the device by `convert`.
    @property
    def weights(self):
        return []

    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, channelwise=self.channelwise, seed=self.seed)
        return config


def _checked_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"`rate` must be a number in [0, 1). Received: rate={rate!r}")
    return float(rate)
