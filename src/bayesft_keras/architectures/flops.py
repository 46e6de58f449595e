"""Floating-point operations of a model's crossbar layers."""

import math

import keras

from bayesft_keras.device.walk import walk_layers


def flops(model):
    """FLOPs of one example through the conv and dense layers of `model`.

    Counts 2 FLOPs (a multiply and an add) per multiply-accumulate of every
    `Conv*`, `DepthwiseConv2D` and `Dense` layer (ReRAM ones included): the
    work a crossbar does. Biases, normalization, activations, pooling and
    residual adds are not counted, as in the usual ptflops/fvcore tables.

    Args:
        model: a built functional or Sequential `keras.Model`.
    """
    macs = 0
    for layer in walk_layers(model):
        if not isinstance(
            layer, keras.layers.Dense | keras.layers.Conv1D | keras.layers.Conv2D
            | keras.layers.DepthwiseConv2D
        ):
            continue
        # A kernel element is used once per output position (grouped and
        # depthwise kernels already hold only the inputs they connect).
        positions = math.prod(layer.output.shape[1:-1])
        macs += math.prod(layer.kernel.shape) * positions
    return 2 * macs
