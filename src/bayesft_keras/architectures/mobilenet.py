"""MobileNetV2 for small images (the CIFAR MobileNetV2 of kuangliu/pytorch-cifar).

Stem Conv(32, 3x3, stride 1), 17 inverted-residual blocks in 7 stages
(expansion, channels, blocks, stride) = (1,16,1,1) (6,24,2,1) (6,32,3,2)
(6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1) — strides of the stem and of
stage 2 are 1 instead of 2 for 32x32 inputs — then Conv(1280, 1x1), global
average pooling, Dense classes. Blocks as torchvision's: expand 1x1 (skipped for
expansion 1) -> depthwise 3x3 -> linear project 1x1, identity shortcut when the
shape is kept. Channels are width-scaled and rounded to multiples of 8; the
1280 head only grows with width > 1.

A channel dropout follows the stem, every block and the head conv. Sites:
`granularity="stage"` (default): `stem, stage1 .. stage7, head, output`;
`"layer"`: `stem, block1 .. block17, head, output`.
"""

import keras

from bayesft_keras.architectures.common import Architecture
from bayesft_keras.architectures.common import make_divisible

_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
_HEAD = 1280
# Blocks with an identity shortcut (all but each stage's first, and stage 1's).
_RESIDUAL_BLOCKS = sum(n - 1 for _, _, n, _ in _STAGES)


def _blocks():
    """(block index, stage index, expansion, channels, stride) of the 17 blocks."""
    out, i = [], 0
    for s, (t, channels, n, stride) in enumerate(_STAGES, start=1):
        for k in range(n):
            i += 1
            out.append((i, s, t, channels, stride if k == 0 else 1))
    return out


def plan(granularity):
    pairs = [("stem", "stem")]
    for i, s, *_ in _blocks():
        pairs.append((f"block{i}", f"block{i}" if granularity == "layer" else f"stage{s}"))
    return pairs + [("head", "head"), ("output", "output")]


def _inverted_residual(builder, x, expansion, filters, strides, name):
    channels_in = x.shape[-1]
    y = x
    if expansion != 1:
        y = builder.conv(y, channels_in * expansion, 1, f"{name}_expand")
    y = builder.conv(y, None, 3, f"{name}_depthwise", strides=strides, depthwise=True)
    residual = strides == 1 and channels_in == filters
    y = builder.conv(
        y, filters, 1, f"{name}_project", activate=False,
        residual_scale=1.0 / _RESIDUAL_BLOCKS if residual else None,
    )
    if residual:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def build(builder, x, num_classes):
    width = builder.settings.width
    x = builder.conv(x, make_divisible(32 * width), 3, "stem")
    x = builder.dropout(x, "stem")
    for i, _, t, channels, stride in _blocks():
        x = _inverted_residual(builder, x, t, make_divisible(channels * width), stride, f"block{i}")
        x = builder.dropout(x, f"block{i}")
    x = builder.conv(x, make_divisible(_HEAD * max(1.0, width)), 1, "head")
    x = builder.dropout(x, "head")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return builder.classify(x, num_classes)


# He init: without normalization, PyTorch's default init does not train it.
MOBILENETV2 = Architecture(
    "mobilenetv2", build, plan, (32, 32, 3), default_granularity="stage", default_init="he",
    summary="CIFAR MobileNetV2: 17 inverted-residual blocks in 7 stages, 1280 head")
