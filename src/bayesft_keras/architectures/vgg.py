"""VGG11 and VGG16 for small images, with the paper's CIFAR head 4096-4096-classes.

3x3 'same' convolutions, each followed by a channel dropout; 2x2 max pooling
('same', so 28x28 reaches 1x1 as 32x32 does); flatten; Dense 4096 -> [fc1] ->
Dense 4096 -> [fc2] -> Dense classes -> [output].

Stages (`granularity="stage"`): VGG11 uses the paper's grouping of its 8
convolutions, 1-3, 4-6 and 7-8 (6 sites in all); VGG16 uses its 5 pooling
blocks (8 sites).
"""

import keras

from bayesft_keras.architectures.common import Architecture

CLASSIFIER_UNITS = 4096

# Pooling blocks of convolution widths.
_BLOCKS = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}
# The stage of each convolution.
_STAGES = {
    "vgg11": (1, 1, 1, 2, 2, 2, 3, 3),
    "vgg16": tuple(b for b, block in enumerate(_BLOCKS["vgg16"], start=1) for _ in block),
}


def _plan(variant, granularity):
    pairs = [
        (f"conv{i}", f"conv{i}" if granularity == "layer" else f"stage{stage}")
        for i, stage in enumerate(_STAGES[variant], start=1)
    ]
    return pairs + [("fc1", "fc1"), ("fc2", "fc2"), ("output", "output")]


def _build(variant, builder, x, num_classes):
    c = builder.settings.channels
    i = 0
    for b, block in enumerate(_BLOCKS[variant], start=1):
        for filters in block:
            i += 1
            x = builder.conv(x, c(filters), 3, f"conv{i}")
            x = builder.dropout(x, f"conv{i}")
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{b}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for fc in ("fc1", "fc2"):
        x = builder.dense(x, c(CLASSIFIER_UNITS), fc)
        x = builder.dropout(x, fc)
    return builder.classify(x, num_classes)


def _architecture(variant, summary):
    return Architecture(
        name=variant,
        build=lambda builder, x, num_classes: _build(variant, builder, x, num_classes),
        plan=lambda granularity: _plan(variant, granularity),
        default_input_shape=(32, 32, 3),
        default_granularity="stage",
        summary=summary,
    )


VGG11 = _architecture("vgg11", "8 convs (64-512), head 4096-4096; stages = convs 1-3, 4-6, 7-8")
VGG16 = _architecture("vgg16", "13 convs (64-512), head 4096-4096; stages = 5 pooling blocks")
