"""Device precision: symmetric fake quantization with a straight-through gradient.

A ReRAM cell holds one of a finite set of conductance levels. Weights are mapped
onto the symmetric narrow-range grid `{k * scale : k = -(2^(b-1) - 1), ..., 2^(b-1) - 1}`
with `scale = max|w| / (2^(b-1) - 1)`: `2^b - 1` levels with zero exactly
representable, the grid of TensorFlow's `fake_quant_with_min_max_vars`
(`narrow_range=True`) and of tensorflow-model-optimization's symmetric weight
quantizer. Rounding is `floor(x / scale + 0.5)`, as in both. The forward pass
sees quantized values; the backward pass is the identity (straight-through).
"""

from keras import ops
from keras import quantizers

MIN_BITS = 2
MAX_BITS = 16
# Keeps the scale finite for an all-zero channel; zeros still quantize to zero.
EPSILON = 1e-12


def validate_bits(bits, name="bits"):
    """Returns `bits` as an int, or None, raising a clear error otherwise."""
    if bits is None:
        return None
    if isinstance(bits, bool) or not isinstance(bits, int) or not (
        MIN_BITS <= bits <= MAX_BITS
    ):
        raise ValueError(
            f"`{name}` must be None (full precision) or an integer in "
            f"[{MIN_BITS}, {MAX_BITS}]. Received: {name}={bits!r}"
        )
    return bits


def num_levels(bits):
    """Number of distinct values of the `bits`-bit symmetric grid."""
    return 2**bits - 1


def fake_quantize(x, bits, axis=None):
    """Symmetric fake quantization of `x` to `bits` bits.

    Args:
        x: float tensor.
        bits: precision; None returns `x` unchanged.
        axis: the axis that keeps its own range (per-channel quantization), or
            None for a single range over the whole tensor.
    """
    if bits is None:
        return x
    # A plain tensor, not a variable: the custom gradient below must not
    # capture variables (TensorFlow would then require a `variables` argument).
    x = ops.copy(x)
    rank = len(x.shape)
    if axis is None:
        reduce_axes = None
    else:
        axis = axis % rank
        reduce_axes = tuple(i for i in range(rank) if i != axis)
    return _straight_through_quantize(x, bits, axis, reduce_axes)


def _straight_through_quantize(x, bits, axis, reduce_axes):
    # The gradient is the identity everywhere, including at the channel's own
    # maximum (TF's fake-quant gradient can drop it there after range nudging).
    @ops.custom_gradient
    def quantize(x):
        max_abs = ops.maximum(ops.max(ops.abs(x), axis=reduce_axes), EPSILON)
        q = quantizers.fake_quant_with_min_max_vars(
            x, -max_abs, max_abs, num_bits=bits, narrow_range=True, axis=axis
        )

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return upstream

        return q, grad

    return quantize(x)


def quantize_weight(w, bits, channel_axes=(-1,), per_channel=True):
    """Quantizes a kernel per output channel (or per tensor).

    Args:
        w: the kernel.
        bits: precision, or None for full precision.
        channel_axes: the axes that together index output channels, e.g.
            `(-1,)` for Dense/Conv kernels and `(-2, -1)` for a depthwise
            kernel (input channel x depth multiplier).
        per_channel: one range per output channel if True, one per tensor if
            False.
    """
    if bits is None:
        return w
    if not per_channel:
        return fake_quantize(w, bits, axis=None)
    rank = len(w.shape)
    axes = sorted(a % rank for a in channel_axes)
    if axes == [rank - 1]:
        return fake_quantize(w, bits, axis=-1)
    # Several trailing channel axes: flatten them into one, quantize, restore.
    if axes != list(range(rank - len(axes), rank)):
        raise ValueError(f"channel_axes must be trailing axes. Received: {channel_axes}")
    shape = ops.shape(w)
    flat = ops.reshape(w, tuple(shape[: rank - len(axes)]) + (-1,))
    return ops.reshape(fake_quantize(flat, bits, axis=-1), shape)


def quantize_activation(x, bits):
    """Fake quantization of a batch of activations (DAC inputs / ADC outputs).

    Each sample gets its own symmetric range `max|x|` over its features, so a
    sample's result does not depend on the rest of its batch.
    """
    if bits is None:
        return x
    rank = len(x.shape)
    if rank == 1:
        return fake_quantize(x, bits, axis=None)
    return _per_sample_quantize(x, bits)


def _per_sample_quantize(x, bits):
    shape = ops.shape(x)
    flat = ops.reshape(x, (-1, _prod(shape[1:])))
    # fake_quant's per-channel axis is the sample axis here: transpose so that
    # samples are the last axis.
    q = fake_quantize(ops.transpose(flat), bits, axis=-1)
    return ops.reshape(ops.transpose(q), shape)


def _prod(dims):
    out = 1
    for d in dims:
        out *= d
    return out
