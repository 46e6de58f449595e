"""Where drift is sampled: which draw a ReRAM layer makes, when, and from which seed.

The noise models (`bayesft_keras.device.noise`, `bayesft_keras.device.physics`,
`bayesft_keras.device.periphery` for the ADCs) say *what* a draw is: a
distribution over the weights (`apply`, `read`) given a seed source and
parameter values. This module says *which* draw a layer makes on a forward
pass, and it is the only place that does:

- the chip: at inference the programmed weights go through the noise model
  with a `SeedStream` on the layer's `chip_seed` variable, so every pass of
  one chip draws the same realization (`sample_chip`);
- training with `train_noise=True`: fresh draws from the layer's own
  `keras.random.SeedGenerator` at every step (`chip_seeds`);
- reads: read noise and ADC noise drawn anew on every pass from the
  `read_seed` variable, advanced by each draw (`ReadSeeds`, `sample_read`);
- the parameters: `device_params` times the `noise_enabled` gain, so a
  sweep or a clean pass only changes variable values (`gained_params`).

These variables live in each layer's `DeviceState`. Seeds are derived in
`bayesft_keras.device.seeds`; `bayesft_keras.device.chip` assigns them for one
chip; the drift evaluator maps them per chip and batch inside its compiled
pass (`chip_mapping`), so the evaluator's chips are the same as
`bayesft_keras.resample`'s.

It is a module apart from the layers (`bayesft_keras.device.layers`) so that
the layers keep their Keras part (config, build, the crossbar's maths) and the
sampling reads in one page.
"""

import random

import keras
from keras import ops

from bayesft_keras.device.seeds import SEED_DTYPE
from bayesft_keras.device.seeds import SeedStream


class ReadSeeds(keras.random.SeedGenerator):
    """A `SeedGenerator` on an existing int32 variable: a new seed for every draw of every pass.

    The variable is the layer's `read_seed`: eager calls, `model.predict`
    and compiled functions advance it; the drift evaluator maps it to a value
    per chip and batch (`keras.StatelessScope`).
    """

    def __init__(self, variable):  # pylint: disable=super-init-not-called
        self.state = variable
        self._initial_seed = 0  # read by the torch backend's dropout
        self.name = "read_seeds"

    def next(self, ordered=True):
        value = self.state.value
        self.state.assign(ops.add(value, ops.convert_to_tensor([0, 1], dtype="int32")))
        return ops.cast(value, SEED_DTYPE)


class DeviceState(keras.layers.Layer):
    """The state of one layer's simulated chip (no trainable weights).

    Args:
        params: initial values of the noise model's parameters.
        read_noise: whether the layer draws noise on every read (then it gets
            a `read_seed` variable).
        read_seed: initial value of `read_seed[0]` (None: random).

    Variables:
        chip_seed: the seed of the current noise realization, shape (2,).
        device_params: the noise model's parameters, shape (len(params),).
        noise_enabled: 1.0 applies the noise, 0.0 leaves weights clean.
        read_seed: the seed of the next read's noise, shape (2,) (with
            `read_noise` only).
    """

    def __init__(self, params=(), read_noise=False, read_seed=None, **kwargs):
        super().__init__(**kwargs)
        self.params = [float(p) for p in params]
        self.read_noise = bool(read_noise)
        self.initial_read_seed = read_seed

    def build(self, input_shape=None):
        self.chip_seed = self.add_weight(
            name="chip_seed", shape=(2,), dtype="int32", initializer="zeros", trainable=False
        )
        self.device_params = self.add_weight(
            name="device_params",
            shape=(len(self.params),),
            dtype="float32",
            initializer=keras.initializers.Constant(self.params) if self.params else "zeros",
            trainable=False,
            autocast=False,
        )
        self.noise_enabled = self.add_weight(
            name="noise_enabled",
            shape=(),
            dtype="float32",
            initializer="ones",
            trainable=False,
            autocast=False,
        )
        if self.read_noise:
            start = self.initial_read_seed
            if start is None:
                start = random.randint(1, 2**30)
            self.read_seed = self.add_weight(
                name="read_seed",
                shape=(2,),
                dtype="int32",
                initializer=keras.initializers.Constant([int(start) & 0x3FFFFFFF, 0]),
                trainable=False,
            )
            self.read_seeds = ReadSeeds(self.read_seed)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["params"] = self.params
        config["read_noise"] = self.read_noise
        config["read_seed"] = self.initial_read_seed
        return config


def chip_seeds(layer, training):
    """The seed source of the layer's device noise for this call, or None when none applies."""
    if layer.noise is None:
        return None
    if training:
        return layer._train_seed_generator if layer.train_noise else None
    return SeedStream(layer.chip_seed)


def read_seeds(layer, training):
    """The seed source of this pass's read noise (devices and ADCs), or None when none applies."""
    if not layer.has_read_noise or (training and not layer.train_noise):
        return None
    return ReadSeeds(layer.device_state.read_seed)


def gained_params(layer):
    """The noise parameters the layer computes with: `device_params` times the on/off gain."""
    gain = layer.noise_enabled
    return [layer.device_params[i] * gain for i in range(layer.noise.num_params)]


def sample_chip(layer, w, seed, programming=False):
    """`w` as the layer's chip holds it: through the noise model with `seed`.

    Args:
        layer: a built ReRAM layer with a noise model.
        w: the quantized target weights (kernel or bias).
        seed: the seed source (`chip_seeds`).
        programming: read the chip right after programming (time parameters
            at their lowest value), the reference of drift compensation.
    """
    params = gained_params(layer)
    if programming:
        params = layer.noise.programming_params(params)
    out = layer.noise.apply(w, seed, params)
    if not layer.noise.exact_identity:
        # Through conductances and back is not bit-exact: switched off means untouched.
        out = ops.where(layer.noise_enabled > 0, out, w)
    return out


def sample_read(layer, w, seeds):
    """One read of the chip's weights `w`: the noise model's read noise, drawn from `seeds`."""
    return layer.noise.read(w, seeds, gained_params(layer))


def chip_mapping(layers, read_layers, layer_seeds, read_seeds_base, gain, offset):
    """The `(variable, value)` pairs that make `layers` one chip, for a `keras.StatelessScope`.

    Args:
        layers: the model's ReRAM layers with noise (`chip.device_layers`).
        read_layers: those of them with read noise.
        layer_seeds: int32 tensor (len(layers), 2): each layer's chip seed
            (`bayesft_keras.device.seeds.layer_seeds`).
        read_seeds_base: int32 tensor (len(read_layers), 2): each read
            layer's first read seed (`bayesft_keras.device.seeds.read_seed_base`).
        gain: 1.0 for the chip, 0.0 for the clean weights.
        offset: int32 tensor (2,) added to the read seeds (the batch's).
    """
    values = [layer_seeds[i] for i in range(len(layers))]
    values += [gain] * len(layers)
    values += [read_seeds_base[i] + offset for i in range(len(read_layers))]
    return list(zip(chip_variables(layers, read_layers), values))


def chip_variables(layers, read_layers):
    """The variables `chip_mapping` maps, in its order (a compiled pass must not read them from the model)."""
    return (
        [layer.chip_seed for layer in layers]
        + [layer.noise_enabled for layer in layers]
        + [layer.read_seed for layer in read_layers]
    )
