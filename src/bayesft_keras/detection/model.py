"""A compact CenterNet-style detector ("objects as points") built from ReRAM layers.

Backbone: four 3x3 ReRAM convolutions in three stages with two 2x2 max-pools
(output stride 4), then a 3x3 head convolution and two 1x1 output
convolutions: a class heatmap (one channel per class, logits; a peak marks an
object's centre) and the box regression (sub-cell centre offset, box width
and height in grid cells). The model has one output, `detections`, of shape
`(H/4, W/4, num_classes + 4)`: channels `[heatmap logits..., dx, dy, w, h]`
(see `decode`). One output tensor keeps the model a plain single-output
Functional model that `evaluate_drift`, `convert` and saving take as is.

Dropout sites (one rate each, named `dropout_<site>` as in
`bayesft_keras.architectures`): `stage1`, `stage2`, `stage3` (channel
dropout after each backbone stage) and `head`. There is no site after the
outputs: a dropped regression output has no neutral value, unlike a dropped
class logit.
"""

import keras

from bayesft_keras.architectures import common
from bayesft_keras.device.layers import ReRAMConv2D

SITES = ("stage1", "stage2", "stage3", "head")
STRIDE = 4
NUM_BOX_CHANNELS = 4  # dx, dy, w, h
OUTPUT_NAME = "detections"
ARCH_NAME = "centernet"
# The heatmap starts at probability 0.1 everywhere (CenterNet's bias prior):
# the focal loss of the ~all-background map then starts small and stable.
HEATMAP_PRIOR = 0.1
# Channels of each layer at width 1.
_CHANNELS = {"conv1": 16, "conv2": 32, "conv3": 64, "conv4": 64, "head": 64}


def sites():
    """The ordered dropout-site names of the detector."""
    return list(SITES)


def build_detector(
    num_classes=10,
    input_shape=(48, 48, 1),
    *,
    dropout=None,
    noise=None,
    bits=None,
    width=1.0,
    normalization="none",
    activation="relu",
    device_options=None,
    name=ARCH_NAME,
):
    """Builds the CenterNet-style detector from ReRAM layers.

    Args:
        num_classes: number of object classes (heatmap channels), >= 1.
        input_shape: (height, width, channels); height and width must be
            multiples of 4 (the output stride).
        dropout: None (no dropout), one rate for every site, or
            `{site: rate}` (missing sites: 0); sites are `SITES`.
        noise: the device noise model of every ReRAM layer (None: ideal).
        bits: device weight precision, or None.
        width: channel multiplier (16-32-64-64-64 channels at 1).
        normalization: "none" (BayesFT's choice), "batch", "layer" or "group".
        activation: the hidden layers' activation.
        device_options: other ReRAM layer arguments (per_channel, input_bits,
            output_bits, noisy_bias, train_noise, seed).
        name: the model's name.

    Returns:
        An uncompiled `keras.Model` with output `detections` of shape
        `(H/4, W/4, num_classes + 4)`.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int >= 1. Received: num_classes={num_classes!r}")
    shape = common.check_image_shape(input_shape, ARCH_NAME, min_size=STRIDE)
    if shape[0] % STRIDE or shape[1] % STRIDE:
        raise ValueError(
            f"`input_shape` height and width must be multiples of {STRIDE} (the output "
            f"stride). Received: input_shape={input_shape!r}"
        )
    settings = common.Settings.create(
        noise=noise, bits=bits, width=width, normalization=normalization,
        activation=activation, device_options=device_options,
        init="he",  # the detector's heads start from CenterNet's prior on zero biases
    )
    rates = common.resolve_rates(dropout, list(SITES), ARCH_NAME)
    builder = common.Builder(settings, [(s, s) for s in SITES], rates)
    c = {layer: settings.channels(base) for layer, base in _CHANNELS.items()}

    inputs = keras.Input(shape, name="image")
    x = builder.conv(inputs, c["conv1"], 3, "conv1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = builder.dropout(x, "stage1")
    x = builder.conv(x, c["conv2"], 3, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = builder.dropout(x, "stage2")
    x = builder.conv(x, c["conv3"], 3, "conv3")
    x = builder.conv(x, c["conv4"], 3, "conv4")
    x = builder.dropout(x, "stage3")
    x = builder.conv(x, c["head"], 3, "head")
    x = builder.dropout(x, "head")
    device = settings.device
    prior = float(keras.ops.log(HEATMAP_PRIOR / (1.0 - HEATMAP_PRIOR)))
    heatmap = ReRAMConv2D(
        num_classes, 1, name="heatmap", bias_initializer=keras.initializers.Constant(prior),
        **device,
    )(x)
    boxes = ReRAMConv2D(NUM_BOX_CHANNELS, 1, name="boxes", **device)(x)
    outputs = keras.layers.Concatenate(name=OUTPUT_NAME)([heatmap, boxes])
    return keras.Model(inputs, outputs, name=name)


def num_classes_of(output_shape):
    """The number of classes of a detector output shape `(..., num_classes + 4)`."""
    channels = output_shape[-1]
    if channels is None or channels <= NUM_BOX_CHANNELS:
        raise ValueError(
            f"A detector output has num_classes + {NUM_BOX_CHANNELS} channels "
            f"(heatmap logits, dx, dy, w, h). Received an output of shape {tuple(output_shape)}"
        )
    return channels - NUM_BOX_CHANNELS
