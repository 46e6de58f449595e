"""Multilayer perceptron (the BayesFT component study uses 3, 6 and 9 layers)."""

import keras

from bayesft_keras.architectures.common import Architecture

HIDDEN_UNITS = 512


def _check_depth(depth):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(
            f"`depth` of mlp must be an int >= 1 (dense layers, output included). "
            f"Received: depth={depth!r}"
        )
    return depth


def plan(granularity, depth=3):
    """Sites `fc1 .. fc<depth-1>` after the hidden layers and `output`; every
    layer is its own stage."""
    depth = _check_depth(depth)
    return [(f"fc{i}", f"fc{i}") for i in range(1, depth)] + [("output", "output")]


def build(builder, x, num_classes, depth=3):
    depth = _check_depth(depth)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, depth):
        x = builder.dense(x, builder.settings.channels(HIDDEN_UNITS), f"fc{i}")
        x = builder.dropout(x, f"fc{i}")
    return builder.classify(x, num_classes)


MLP = Architecture("mlp", build, plan, (28, 28, 1), options={"depth": 3}, images=False,
    summary=f"`depth` dense layers (output included), {HIDDEN_UNITS}·width hidden units")
