"""LeNet-5 as in the BayesFT authors' code (shared/REFERENCE.md).

Conv(6, 5x5) -> act -> [conv1] -> MaxPool 2 -> Conv(16, 5x5) -> act -> [conv2]
-> MaxPool 2 -> Conv(120, 4x4) -> act -> flatten -> [conv3] -> Dense 84 -> act
-> [fc1] -> Dense classes -> [output]; [site] marks a dropout. Unpadded
convolutions: 28x28 is the smallest input, larger ones give a larger flatten.
"""

import keras

from bayesft_keras.architectures.common import Architecture
from bayesft_keras.architectures.common import smallest_size

_SITES = ("conv1", "conv2", "conv3", "fc1", "output")


def plan(granularity):
    """Five sites, one per dropout of the paper's LeNet-5 (every layer is its own stage)."""
    return [(site, site) for site in _SITES]


def _fits(side):
    side -= 4  # conv1 5x5
    if side < 1:
        return False
    side = side // 2 - 4  # pool, conv2 5x5
    if side < 1:
        return False
    return side // 2 - 3 >= 1  # pool, conv3 4x4


def build(builder, x, num_classes):
    c = builder.settings.channels
    x = builder.valid_conv(x, c(6), 5, "conv1")
    x = builder.dropout(x, "conv1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = builder.valid_conv(x, c(16), 5, "conv2")
    x = builder.dropout(x, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = builder.valid_conv(x, c(120), 4, "conv3")
    x = keras.layers.Flatten(name="flatten")(x)
    x = builder.dropout(x, "conv3")
    x = builder.dense(x, c(84), "fc1")
    x = builder.dropout(x, "fc1")
    return builder.classify(x, num_classes)


LENET5 = Architecture("lenet5", build, plan, (28, 28, 1), min_size=smallest_size(_fits),
    summary="the paper's LeNet-5: 3 unpadded convs (6, 16, 120), dense 84")
