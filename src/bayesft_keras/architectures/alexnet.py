"""AlexNet for small images (the CIFAR AlexNet of bearpaw/pytorch-classification).

Conv(64, 11x11, stride 4) -> pool -> Conv(192, 5x5) -> pool -> Conv(384, 3x3)
-> Conv(256, 3x3) -> Conv(256, 3x3) -> pool -> flatten -> Dense classes, with a
channel dropout after every convolution. 'same' padding (ceil) everywhere, so
any size works; 32x32 ends at 1x1x256.
"""

import keras

from bayesft_keras.architectures.common import Architecture

# (filters, kernel, stride, pool after, stage)
_CONVS = (
    (64, 11, 4, True, 1),
    (192, 5, 1, True, 2),
    (384, 3, 1, False, 3),
    (256, 3, 1, False, 3),
    (256, 3, 1, True, 3),
)


def plan(granularity):
    """Layer: `conv1 .. conv5, output`; stage (pooling blocks): `stage1` = conv1,
    `stage2` = conv2, `stage3` = conv3-5, then `output`."""
    pairs = []
    for i, (*_, stage) in enumerate(_CONVS, start=1):
        pairs.append((f"conv{i}", f"conv{i}" if granularity == "layer" else f"stage{stage}"))
    return pairs + [("output", "output")]


def build(builder, x, num_classes):
    c = builder.settings.channels
    pools = 0
    for i, (filters, kernel, stride, pool, _) in enumerate(_CONVS, start=1):
        x = builder.conv(x, c(filters), kernel, f"conv{i}", strides=stride)
        x = builder.dropout(x, f"conv{i}")
        if pool:
            pools += 1
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{pools}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return builder.classify(x, num_classes)


ALEXNET = Architecture("alexnet", build, plan, (32, 32, 3),
    summary="CIFAR AlexNet: 5 convs (64, 192, 384, 256, 256), linear classifier")
