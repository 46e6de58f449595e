"""What every architecture of the zoo shares: settings, ReRAM blocks and dropout sites.

A *dropout site* is one searchable rate. Each family lists its dropout
*positions* (one per Dropout layer, e.g. `conv3`) and the site each position
belongs to for a granularity: with `granularity="layer"` every position is
its own site; with `"stage"` the positions of one stage share a site (e.g.
`stage1` = convs 1-3 of VGG11, as in the BayesFT paper). A site's Dropout
layer is named `dropout_<site>`; when several layers share a site they are
`dropout_<site>_1`, `dropout_<site>_2`, ... (see `dropout_layers`).
"""

import dataclasses
import re

import keras

from bayesft_keras.architectures.site_dropout import SiteDropout
from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device import quantization
from bayesft_keras.device.layers import ReRAMConv2D
from bayesft_keras.device.layers import ReRAMDense
from bayesft_keras.device.layers import ReRAMDepthwiseConv2D
from bayesft_keras.device.walk import walk_layers

NORMALIZATIONS = ("none", "batch", "layer", "group")
# Weight initializations (`Settings.init`); see `Builder._initializers`.
INITS = ("torch", "he", "glorot")
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
    init: str = "torch"
    init_scale: float = 1.0

    @classmethod
    def create(
        cls, noise=None, bits=None, width=1.0, normalization="none", activation="relu",
        device_options=None, init="torch", init_scale=1.0,
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
        if init not in INITS:
            raise ValueError(f"`init` must be one of {list(INITS)}. Received: init={init!r}")
        init_scale = check_init_scale(init_scale)
        return cls(noise, bits, float(width), normalization, activation,
                   tuple(sorted(device_options.items())), init, init_scale)

    def channels(self, base):
        """`base` channels (or units) scaled by the width multiplier, at least 1."""
        return max(1, int(round(base * self.width)))

    @property
    def device(self):
        return dict(self.device_options, noise=self.noise, bits=self.bits)


def check_init_scale(init_scale):
    if (
        isinstance(init_scale, bool) or not isinstance(init_scale, (int, float))
        or not 0 < init_scale < float("inf")
    ):
        raise ValueError(
            f"`init_scale` must be a positive finite number. Received: init_scale={init_scale!r}"
        )
    return float(init_scale)


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
    """Groups of GroupNormalization: the largest divisor of `channels` that
    leaves at least two channels per group, at most 32 groups (1 if none)."""
    limit = min(_MAX_GROUPS, channels // 2)
    return max([g for g in range(1, limit + 1) if channels % g == 0] or [1])


class Builder:
    """Adds ReRAM layers, normalization, activation and named dropout to a functional graph.

    Args:
        settings: the `Settings`.
        plan: ordered `(position, site)` pairs, one per Dropout layer.
        rates: `{site: rate}` for every site of the plan.
    """

    def __init__(self, settings, plan, rates):
        self.settings = settings
        self.rates = rates
        self._names = dropout_layer_names(plan)
        self._sites = dict(plan)

    # -- weight layers --------------------------------------------------------

    def _initializers(self, activate, fan_in, depthwise_channels=None, residual_scale=None):
        """`(kernel_initializer, bias_initializer)` of a layer whose outputs each see
        `fan_in` inputs, for `Settings.init`, with bounds times `Settings.init_scale`:

        - "torch": PyTorch's default for Conv2d/Linear (`kaiming_uniform_(a=sqrt(5))`):
          kernel and bias both U(+-1/sqrt(fan_in)). The BayesFT authors trained with it,
          and it tolerates drift far better than He (shared/REFERENCE.md).
        - "he": He-uniform, U(+-sqrt(6/fan_in)), for ReLU-like layers, Glorot-uniform
          for the others; zero biases.
        - "glorot": Glorot-uniform, zero biases (Keras's default).

        `residual_scale` (he and glorot): the last layer of a residual branch starts
        with variance `residual_scale`/fan_in (as Fixup): without normalization, the
        sums of L branches would otherwise grow the signal ~2**(L/2).
        """
        s = self.settings
        if s.init == "torch":
            bound = s.init_scale / fan_in**0.5
            uniform = keras.initializers.RandomUniform(-bound, bound)
            return uniform, keras.initializers.RandomUniform(-bound, bound)
        # VarianceScaling's `scale` multiplies the variance: the bound's factor squared.
        variance, mode = s.init_scale**2, "fan_avg"
        he = s.init == "he" and activate and s.activation in RELU_LIKE
        if residual_scale is not None:
            variance, mode = variance * residual_scale, "fan_in"
        elif he:
            # He keeps the signal's scale through ReLU-like layers (without
            # normalization, Glorot's shrinks it ~1e-11 times across MobileNetV2).
            variance, mode = variance * 2.0, "fan_in"
        if depthwise_channels is not None:
            # Keras counts a depthwise kernel's fan-in as if it were a full
            # convolution (window x channels); each output sees one channel.
            variance, mode = variance * depthwise_channels, "fan_in"
        kernel = keras.initializers.VarianceScaling(variance, mode=mode, distribution="uniform")
        return kernel, "zeros"

    def conv(
        self, x, filters, kernel_size, name, strides=1, activate=True, depthwise=False,
        residual_scale=None,
    ):
        """ReRAM convolution ('same' padding) -> normalization -> activation.

        `residual_scale`: for the last conv of a residual branch, its
        initial weight variance as a fraction of 1/fan-in (see `_initializer`).
        """
        s = self.settings
        use_bias = s.normalization == "none"
        window = kernel_size * kernel_size
        if depthwise:
            kernel, bias = self._initializers(activate, window, depthwise_channels=x.shape[-1])
            layer = ReRAMDepthwiseConv2D(
                kernel_size, strides=strides, padding="same", use_bias=use_bias, name=name,
                depthwise_initializer=kernel, bias_initializer=bias, **s.device,
            )
        else:
            kernel, bias = self._initializers(
                activate, window * x.shape[-1], residual_scale=residual_scale
            )
            layer = ReRAMConv2D(
                filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
                name=name, kernel_initializer=kernel, bias_initializer=bias, **s.device,
            )
        x = layer(x)
        x = self.normalize(x, name)
        return self.activate(x, name) if activate else x

    def valid_conv(self, x, filters, kernel_size, name):
        """ReRAM convolution without padding (LeNet-5) -> normalization -> activation."""
        s = self.settings
        kernel, bias = self._initializers(True, kernel_size * kernel_size * x.shape[-1])
        x = ReRAMConv2D(
            filters, kernel_size, padding="valid", use_bias=s.normalization == "none", name=name,
            kernel_initializer=kernel, bias_initializer=bias, **s.device,
        )(x)
        return self.activate(self.normalize(x, name), name)

    def dense(self, x, units, name, activate=True):
        """ReRAM dense layer -> normalization -> activation (both skipped when not `activate`)."""
        s = self.settings
        use_bias = not activate or s.normalization == "none"
        kernel, bias = self._initializers(activate, x.shape[-1])
        x = ReRAMDense(
            units, use_bias=use_bias, name=name, kernel_initializer=kernel,
            bias_initializer=bias, **s.device,
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
        """The dropout layer of `position`: channel dropout on feature maps, plain otherwise.

        A `SiteDropout`, whose rate a search sets per trial without a new trace.
        """
        site = self._sites[position]
        return SiteDropout(self.rates[site], channelwise=len(x.shape) == 4, name=self._names[position])(x)

    def classify(self, x, num_classes):
        """Output layer -> its dropout (position `output`) -> softmax."""
        x = self.dense(x, num_classes, "output", activate=False)
        x = self.dropout(x, "output")
        return keras.layers.Activation("softmax", name="probabilities")(x)


# -- sites ---------------------------------------------------------------------


def sites_of(plan):
    """The distinct sites of a plan, in order of first appearance."""
    return list(dict.fromkeys(site for _, site in plan))


def dropout_layer_names(plan):
    """`{position: Dropout layer name}`: `dropout_<site>`, or `dropout_<site>_<k>`
    when `k`-th of several positions sharing the site."""
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
    """The Dropout layers of `model` that take the rate of `site`, in graph order."""
    pattern = re.compile(rf"dropout_{re.escape(site)}(_\d+)?")
    return [
        layer
        for layer in walk_layers(model)
        if isinstance(layer, SiteDropout | keras.layers.Dropout)
        and pattern.fullmatch(layer.name)
    ]


def resolve_rates(dropout, sites, arch):
    """`dropout` (None, a rate, or `{site: rate}`) -> `{site: rate}` for every site."""
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
    """MobileNet's channel rounding: nearest multiple of `divisor`, never below 90%."""
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
    """The smallest image side for which `fits(side)` holds (a shape trace)."""
    for side in range(1, limit + 1):
        if fits(side):
            return side
    raise ValueError(f"No image side up to {limit} fits.")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One entry of the zoo.

    Attributes:
        name: the registry name.
        build: `build(builder, inputs, num_classes, **options) -> outputs`.
        plan: `plan(granularity, **options) -> [(position, site), ...]`,
            one pair per Dropout layer, in graph order.
        default_input_shape: the size the architecture is designed for.
        default_granularity: "layer" or "stage" (the paper's choice).
        min_size: the smallest image side it takes (1: any).
        options: its own options and their defaults (e.g. `{"depth": 3}`).
        images: whether it needs (height, width, channels) inputs.
        summary: one line for the docs.
        default_init: the weight initialization used when none is given (see
            `INITS`): "torch", as the BayesFT authors trained, where the network
            trains with it; "he" (with Fixup-style residual branches) for the
            deep ones that do not train without normalization otherwise.
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
    default_init: str = "torch"
