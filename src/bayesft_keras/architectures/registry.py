"""Architecture names -> models built from ReRAM layers with named dropout sites."""

import dataclasses

import keras

from bayesft_keras.architectures import common
from bayesft_keras.architectures.alexnet import ALEXNET
from bayesft_keras.architectures.lenet import LENET5
from bayesft_keras.architectures.mlp import MLP
from bayesft_keras.architectures.mobilenet import MOBILENETV2
from bayesft_keras.architectures.resnet import RESNET18
from bayesft_keras.architectures.vgg import VGG11
from bayesft_keras.architectures.vgg import VGG16

ARCHITECTURES = {a.name: a for a in (MLP, LENET5, ALEXNET, VGG11, VGG16, RESNET18, MOBILENETV2)}
ALIASES = {"vgg": "vgg11"}


def available():
    """The architecture names `build` accepts (aliases included)."""
    return list(ARCHITECTURES) + list(ALIASES)


def get(name):
    """The `Architecture` entry of `name` (an alias resolves to its target)."""
    if isinstance(name, str):
        key = ALIASES.get(name.lower(), name.lower())
        if key in ARCHITECTURES:
            return ARCHITECTURES[key]
    raise ValueError(f"Unknown architecture {name!r}. Valid names: {', '.join(available())}")


def _options(arch, options):
    unknown = sorted(set(options) - set(arch.options))
    if unknown:
        allowed = sorted(arch.options) or "none"
        raise ValueError(
            f"{arch.name} does not take option(s) {unknown}; its own options: {allowed}"
        )
    return {**arch.options, **options}


def sites(name, *, granularity=None, **kwargs):
    """The ordered dropout-site names of an architecture.

    Takes the arguments of `build` (only `granularity` and the
    architecture's own options, such as mlp's `depth`, change the sites).
    """
    arch = get(name)
    granularity = common.check_granularity(granularity, arch.default_granularity)
    own = {k: v for k, v in kwargs.items() if k not in _BUILD_ARGS}
    return common.sites_of(arch.plan(granularity, **_options(arch, own)))


# `build` arguments other than granularity and the architecture's own options.
_BUILD_ARGS = (
    "dropout", "noise", "bits", "input_shape", "num_classes", "width", "normalization",
    "activation", "device_options", "init", "init_scale",
)


def default_input_shape(name):
    """The input shape an architecture is designed for (used when none is given)."""
    return get(name).default_input_shape


class Blueprint:
    """A validated architecture configuration, ready to build with any dropout rates.

    Made by `blueprint`; `build` is `blueprint(name, **kwargs).build(dropout)`.

    Attributes:
        architecture: the `Architecture` entry.
        sites: the ordered dropout-site names.
        input_shape: the model's input shape.
    """

    def __init__(self, architecture, settings, input_shape, num_classes, plan, options):
        self.architecture = architecture
        self.settings = settings
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.options = options
        self._plan = plan
        self.sites = common.sites_of(plan)

    def build(self, dropout=None, *, init_scale=None):
        """The model, with `dropout` (None, one rate, or `{site: rate}`), and
        `init_scale` in place of the blueprint's when given (a searched value)."""
        arch = self.architecture
        rates = common.resolve_rates(dropout, self.sites, arch.name)
        settings = self.settings
        if init_scale is not None:
            settings = dataclasses.replace(settings, init_scale=common.check_init_scale(init_scale))
        builder = common.Builder(settings, self._plan, rates)
        inputs = keras.Input(shape=self.input_shape, name="image")
        outputs = arch.build(builder, inputs, self.num_classes, **self.options)
        return keras.Model(inputs, outputs, name=arch.name)


def blueprint(
    name,
    *,
    noise=None,
    bits=None,
    input_shape=None,
    num_classes=10,
    width=1.0,
    normalization="none",
    activation="relu",
    granularity=None,
    device_options=None,
    init=None,
    init_scale=1.0,
    **options,
):
    """Validates the arguments of `build` (all but `dropout`) into a `Blueprint`."""
    arch = get(name)
    granularity = common.check_granularity(granularity, arch.default_granularity)
    options = _options(arch, options)
    settings = common.Settings.create(
        noise, bits, width, normalization, activation, device_options,
        init=arch.default_init if init is None else init, init_scale=init_scale,
    )
    num_classes = common.check_num_classes(num_classes)
    if input_shape is None:
        input_shape = arch.default_input_shape
    if arch.images:
        input_shape = common.check_image_shape(input_shape, arch.name, arch.min_size)
    else:
        input_shape = common.check_shape(input_shape)
    plan = arch.plan(granularity, **options)
    return Blueprint(arch, settings, input_shape, num_classes, plan, options)


def build(name, dropout=None, **kwargs):
    """Builds an architecture of the zoo from ReRAM layers.

    Args:
        name: one of `available()`: "mlp", "lenet5", "alexnet", "vgg11" (or
            "vgg"), "vgg16", "resnet18", "mobilenetv2".
        dropout: the dropout rates: None (all 0), one rate for every site, or
            `{site: rate}` (missing sites get 0). Sites: `sites`.
        noise: the device noise model of every ReRAM layer, e.g.
            `LogNormalDrift(0.8)`; None (default) for an ideal device.
        bits: weight precision of the device, or None.
        input_shape: (height, width, channels); None for the size the
            architecture is designed for (28x28x1 for mlp and lenet5,
            32x32x3 otherwise). Too small a size raises, naming the minimum.
        num_classes: number of classes (>= 2; default 10).
        width: multiplier of every layer's channels or units (default 1.0).
        normalization: after each hidden conv/dense layer: "none" (default,
            as the paper's CIFAR models), "batch", "layer" or "group".
        activation: any Keras activation name ("relu" (default), "tanh",
            "gelu", ...).
        granularity: "layer" (one site per dropout layer) or "stage" (one
            per stage); None for the architecture's default (the paper's).
        device_options: more ReRAM layer arguments for every layer
            (per_channel, input_bits, output_bits, noisy_bias, train_noise, seed).
        init: the weight initialization: "torch" (PyTorch's default, kernel
            and bias U(+-1/sqrt(fan_in)), as the BayesFT authors trained),
            "he" (He-uniform for ReLU-like layers, Glorot otherwise, zero
            biases) or "glorot"; None for the architecture's default ("torch",
            except "he" for resnet18 and mobilenetv2, which need it to train
            without normalization). It changes drift tolerance as much as
            dropout does (shared/REFERENCE.md).
        init_scale: a factor on every initial weight's and bias's bound.
        **options: the architecture's own options (mlp: `depth`, the
            number of dense layers, output included; default 3).

    Returns:
        An uncompiled functional `keras.Model` that outputs class
        probabilities; its Dropout layers are named after their sites
        (`dropout_layers`).
    """
    return blueprint(name, **kwargs).build(dropout)


dropout_layers = common.dropout_layers
