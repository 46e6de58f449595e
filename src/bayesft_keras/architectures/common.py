"""What every architecture of the zoo shares: settings, ReRAM blocks and dropout sites.

A *dropout site* is one searchable rate. Each family lists its dropout
*positions* (one per Dropout layer, e.g. ``conv3``) and the site each position
belongs to for a granularity: with ``granularity="layer"`` every position is
its own site; with ``"stage"`` the positions of one stage share a site (e.g.
``stage1`` = convs 1-3 of VGG11, as in the BayesFT paper). A site's Dropout
layer is named ``dropout_<site>``; when several layers share a site they are
``dropout_<site>_1``, ``dropout_<site>_2``, ... (see `dropout_layers`).
"""

import dataclasses
import re

import keras

from bayesft_keras import noise as noise_lib
from bayesft_keras import quantization
from bayesft_keras.layers import ReRAMConv2D
from bayesft_keras.layers import ReRAMDense
from bayesft_keras.layers import ReRAMDepthwiseConv2D

NORMALIZATIONS = ("none", "batch", "layer", "group")
GRANULARITIES = ("layer", "stage")
# ReRAM layer arguments besides noise and bits that `device_options` may set.
DEVICE_OPTIONS = ("per_channel", "input_bits", "output_bits", "noisy_bias", "train_noise", "seed", "periphery")
_MAX_GROUPS = 32
# Activations whose layers get He initialization.
RELU_LIKE = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated options shared by every architecture."""

    noise: object = None
    bits: int = None
    width: float = 1.0
    normalization: str = "none"
    activation: str = "relu"
    device_options: tuple = ()

    @classmethod
    def create(
        cls, noise=None, bits=None, width=1.0, normalization="none", activation="relu",
        device_options=None,
    ):
        noise = noise_lib.get(noise)
        bits = quantization.validate_bits(bits, "bits")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"`width` must be a positive number. Received: width={width!r}")
        if normalization is None:
            normalization = "none"
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {list(NORMALIZATIONS)}. "
                f"Received: normalization={normalization!r}"
            )
        if not isinstance(activation, str):
            raise ValueError(
                f"`activation` must be a Keras activation name. Received: activation={activation!r}"
            )
        try:
            keras.activations.get(activation)
        except ValueError:
            raise ValueError(
                "`activation` must be a Keras activation name (e.g. 'relu', 'tanh', "
                f"'sigmoid', 'gelu', 'elu'). Received: activation={activation!r}"
            ) from None
        device_options = dict(device_options or {})
        unknown = sorted(set(device_options) - set(DEVICE_OPTIONS))
        if unknown:
            raise ValueError(
                f"`device_options` may set {list(DEVICE_OPTIONS)}. Received unknown keys: {unknown}"
            )
        return cls(noise, bits, float(width), normalization, activation,
                   tuple(sorted(device_options.items())))

    def channels(self, base):
        """``base`` channels (or units) scaled by the width multiplier, at least 1."""
        return max(1, int(round(base * self.width)))

    @property
    def device(self):
        return dict(self.device_options, noise=self.noise, bits=self.bits)


def check_granularity(granularity, default):
    if granularity is None:
        return default
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"`granularity` must be one of {list(GRANULARITIES)} or None (the "
            f"architecture's default). Received: granularity={granularity!r}"
        )
    return granularity


def group_count(channels):
    """Groups of GroupNormalization: the largest divisor of ``channels`` that
    leaves at least two channels per group, at most 32 groups (1 if none)."""
    limit = min(_MAX_GROUPS, channels // 2)
    return max([g for g in range(1, limit + 1) if channels % g == 0] or [1])


class Builder:
    """Adds ReRAM layers, normalization, activation and named dropout to a functional graph.

    Args:
        settings: the `Settings`.
        plan: ordered ``(position, site)`` pairs, one per Dropout layer.
        rates: ``{site: rate}`` for every site of the plan.
    """

    def __init__(self, settings, plan, rates):
        self.settings = settings
        self.rates = rates
        self._names = dropout_layer_names(plan)
        self._sites = dict(plan)

    # -- weight layers --------------------------------------------------------

    def _initializer(self, activate, depthwise_channels=None, residual_scale=None):
        # He initialization keeps the signal's scale through ReLU-like layers
        # (without normalization, Glorot's shrinks it ~1e-11 times across
        # MobileNetV2); Keras's Glorot default for linear and other layers.
        # The last layer of a residual branch starts small (variance
        # `residual_scale` of its input's, as Fixup): without normalization,
        # the sums of L branches would otherwise grow the signal ~2**(L/2).
        if residual_scale is not None:
            return keras.initializers.VarianceScaling(
                residual_scale, mode="fan_in", distribution="uniform"
            )
        he = activate and self.settings.activation in RELU_LIKE
        if depthwise_channels is not None:
            # Keras counts a depthwise kernel's fan-in as if it were a full
            # convolution (window x channels); each output sees one channel.
            scale = (2.0 if he else 1.0) * depthwise_channels
            return keras.initializers.VarianceScaling(scale, mode="fan_in", distribution="uniform")
        return "he_uniform" if he else "glorot_uniform"

    def conv(
        self, x, filters, kernel_size, name, strides=1, activate=True, depthwise=False,
        residual_scale=None,
    ):
        """ReRAM convolution ('same' padding) -> normalization -> activation.

        ``residual_scale``: for the last conv of a residual branch, its
        initial weight variance as a fraction of 1/fan-in (see `_initializer`).
        """
        s = self.settings
        use_bias = s.normalization == "none"
        if depthwise:
            layer = ReRAMDepthwiseConv2D(
                kernel_size, strides=strides, padding="same", use_bias=use_bias, name=name,
                depthwise_initializer=self._initializer(activate, x.shape[-1]), **s.device,
            )
        else:
            layer = ReRAMConv2D(
                filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
                name=name,
                kernel_initializer=self._initializer(activate, residual_scale=residual_scale),
                **s.device,
            )
        x = layer(x)
        x = self.normalize(x, name)
        return self.activate(x, name) if activate else x

    def valid_conv(self, x, filters, kernel_size, name):
        """ReRAM convolution without padding (LeNet-5) -> normalization -> activation."""
        s = self.settings
        x = ReRAMConv2D(
            filters, kernel_size, padding="valid", use_bias=s.normalization == "none", name=name,
            kernel_initializer=self._initializer(True), **s.device,
        )(x)
        return self.activate(self.normalize(x, name), name)

    def dense(self, x, units, name, activate=True):
        """ReRAM dense layer -> normalization -> activation (both skipped when not ``activate``)."""
        s = self.settings
        use_bias = not activate or s.normalization == "none"
        x = ReRAMDense(
            units, use_bias=use_bias, name=name, kernel_initializer=self._initializer(activate),
            **s.device,
        )(x)
        if not activate:
            return x
        return self.activate(self.normalize(x, name), name)

    def normalize(self, x, name):
        kind = self.settings.normalization
        if kind == "none":
            return x
        if kind == "batch":
            return keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        if kind == "layer":
            if len(x.shape) == 4:
                # Over (height, width, channels) of each example, one scale per
                # channel: PyTorch's GroupNorm(1, C), the usual LayerNorm of CNNs.
                return keras.layers.GroupNormalization(groups=1, name=f"{name}_ln")(x)
            return keras.layers.LayerNormalization(name=f"{name}_ln")(x)
        return keras.layers.GroupNormalization(
            groups=group_count(x.shape[-1]), name=f"{name}_gn"
        )(x)

    def activate(self, x, name):
        return keras.layers.Activation(self.settings.activation, name=f"{name}_act")(x)

    # -- dropout --------------------------------------------------------------

    def dropout(self, x, position):
        """The Dropout layer of ``position``: channel dropout on feature maps, plain otherwise."""
        site = self._sites[position]
        rate = self.rates[site]
        name = self._names[position]
        if len(x.shape) == 4:
            return keras.layers.SpatialDropout2D(rate, name=name)(x)
        return keras.layers.Dropout(rate, name=name)(x)

    def classify(self, x, num_classes):
        """Output layer -> its dropout (position ``output``) -> softmax."""
        x = self.dense(x, num_classes, "output", activate=False)
        x = self.dropout(x, "output")
        return keras.layers.Activation("softmax", name="probabilities")(x)


# -- sites ---------------------------------------------------------------------


def sites_of(plan):
    """The distinct sites of a plan, in order of first appearance."""
    return list(dict.fromkeys(site for _, site in plan))


def dropout_layer_names(plan):
    """``{position: Dropout layer name}``: ``dropout_<site>``, or ``dropout_<site>_<k>``
    when ``k``-th of several positions sharing the site."""
    counts = {}
    for _, site in plan:
        counts[site] = counts.get(site, 0) + 1
    seen = {}
    names = {}
    for position, site in plan:
        if counts[site] == 1:
            names[position] = f"dropout_{site}"
        else:
            seen[site] = seen.get(site, 0) + 1
            names[position] = f"dropout_{site}_{seen[site]}"
    return names


def dropout_layers(model, site):
    """The Dropout layers of ``model`` that take the rate of ``site``, in graph order."""
    pattern = re.compile(rf"dropout_{re.escape(site)}(_\d+)?")
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.Dropout | keras.layers.SpatialDropout2D)
        and pattern.fullmatch(layer.name)
    ]


def resolve_rates(dropout, sites, arch):
    """``dropout`` (None, a rate, or ``{site: rate}``) -> ``{site: rate}`` for every site."""
    if dropout is None:
        rates = {}
    elif isinstance(dropout, dict):
        unknown = [k for k in dropout if k not in sites]
        if unknown:
            raise ValueError(
                f"`dropout` names unknown site(s) {unknown} for {arch}. "
                f"Its sites are {sites}. Received: dropout={dropout!r}"
            )
        rates = dict(dropout)
    else:
        rates = {site: dropout for site in sites}
    for site in sites:
        rate = rates.get(site, 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(
                f"Dropout rates must be numbers in [0, 1). Received: dropout={dropout!r} "
                f"(site {site!r}: {rate!r})"
            )
        rates[site] = float(rate)
    return rates


# -- input shapes --------------------------------------------------------------


def check_image_shape(input_shape, arch, min_size=1):
    """Validates an (height, width, channels) input shape against a minimum size."""
    shape = check_shape(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"`input_shape` of {arch} must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    height, width, _ = shape
    if height < min_size or width < min_size:
        raise ValueError(
            f"`input_shape` {shape} is too small for {arch}: it needs at least "
            f"{min_size}x{min_size} pixels. Resize or pad the images (e.g. "
            f"`Dataset.fit_to(({min_size}, {min_size}, {shape[2]}), mode='pad')`)."
        )
    return shape


def check_shape(input_shape):
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_shape` must be a tuple of positive ints. Received: input_shape={input_shape!r}"
        ) from None
    if not shape or min(shape) < 1 or any(d != s for d, s in zip(shape, input_shape)):
        raise ValueError(
            f"`input_shape` must be a tuple of positive ints. Received: input_shape={input_shape!r}"
        )
    return shape


def make_divisible(value, divisor=8):
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never below 90%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}"
        )
    return num_classes


def smallest_size(fits, limit=4096):
    """The smallest image side for which ``fits(side)`` holds (a shape trace)."""
    for side in range(1, limit + 1):
        if fits(side):
            return side
    raise ValueError(f"No image side up to {limit} fits.")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One entry of the zoo.

    Attributes:
        name: the registry name.
        build: ``build(builder, inputs, num_classes, **options) -> outputs``.
        plan: ``plan(granularity, **options) -> [(position, site), ...]``,
            one pair per Dropout layer, in graph order.
        default_input_shape: the size the architecture is designed for.
        default_granularity: "layer" or "stage" (the paper's choice).
        min_size: the smallest image side it takes (1: any).
        options: its own options and their defaults (e.g. ``{"depth": 3}``).
        images: whether it needs (height, width, channels) inputs.
        summary: one line for the docs.
    """

    name: str
    build: object
    plan: object
    default_input_shape: tuple
    default_granularity: str = "layer"
    min_size: int = 1
    options: dict = dataclasses.field(default_factory=dict)
    images: bool = True
    summary: str = ""
