"""ResNet-18 for small images (the CIFAR ResNet-18 of kuangliu/pytorch-cifar).

3x3 stem conv (stride 1, no max pool), 4 stages of 2 basic blocks (64, 128,
256, 512 channels; strides 1, 2, 2, 2), global average pooling, Dense classes.
A channel dropout follows the stem and every block (after the residual add and
activation), and one the output.

Sites: `granularity="stage"` (default, 6 sites as in the paper): `stem`,
`stage1 .. stage4` (shared by the 2 blocks of a stage), `output`;
`"layer"`: `stem`, `stage1_block1 .. stage4_block2`, `output`.
"""

import keras

from bayesft_keras.architectures.common import Architecture

_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))
_BLOCKS_PER_STAGE = 2


def plan(granularity):
    pairs = [("stem", "stem")]
    for s in range(1, len(_STAGES) + 1):
        for b in range(1, _BLOCKS_PER_STAGE + 1):
            position = f"stage{s}_block{b}"
            pairs.append((position, position if granularity == "layer" else f"stage{s}"))
    return pairs + [("output", "output")]


def _basic_block(builder, x, filters, strides, name):
    y = builder.conv(x, filters, 3, f"{name}_conv1", strides=strides)
    y = builder.conv(
        y, filters, 3, f"{name}_conv2", activate=False,
        residual_scale=1.0 / (len(_STAGES) * _BLOCKS_PER_STAGE),
    )
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = builder.conv(x, filters, 1, f"{name}_shortcut", strides=strides, activate=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return builder.activate(y, name)


def build(builder, x, num_classes):
    c = builder.settings.channels
    x = builder.conv(x, c(64), 3, "stem")
    x = builder.dropout(x, "stem")
    for s, (filters, stride) in enumerate(_STAGES, start=1):
        for b in range(1, _BLOCKS_PER_STAGE + 1):
            position = f"stage{s}_block{b}"
            x = _basic_block(builder, x, c(filters), stride if b == 1 else 1, position)
            x = builder.dropout(x, position)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return builder.classify(x, num_classes)


# He init: without normalization, PyTorch's default init does not train it.
RESNET18 = Architecture(
    "resnet18", build, plan, (32, 32, 3), default_granularity="stage", default_init="he",
    summary="CIFAR ResNet-18: stem + 4 stages x 2 basic blocks (64-512), global pool")
