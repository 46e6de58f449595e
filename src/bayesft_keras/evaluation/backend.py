"""The compiled pass with the Keras backend in use.

The traced function reads model variables, and each backend handles them its
own way: TensorFlow reads them inside `tf.function` (new values are seen
without a retrace), JAX needs their values passed in (`jax.jit` functions are
pure), torch runs eagerly without autograd. Chips are mapped over inside the
compiled function: TensorFlow runs `parallel` of them at once
(`auto_chips_per_pass` picks how many).

The stacked pass (`bayesft_keras.evaluation.stacked`) runs a group of chips
side by side; `stacked_default`, `auto_stacked_chips`, `grouped_conv` and
`fuses_grouped_bias` are its backend-specific parts.
"""

import math
import os

import keras
from keras import ops
from keras import tree

from bayesft_keras.device.chip import device_layers as device_layers_of
from bayesft_keras.device.walk import walk_layers

# Activation memory that several chips of one pass may take together.
_CHIP_GROUP_BYTES = 512 * 2**20
# The same for the chips of one stacked pass (`bayesft_keras.evaluation.stacked`), and their most.
_STACKED_BYTES = 1024 * 2**20
_MOST_STACKED = 20


# The stacked pass pays where a narrow first convolution sees the images once for every chip
# and few convolutions follow (LeNet-5); a deeper network's grouped convolutions, and an MLP's
# batched matmuls, cost more than they save.
MAX_STACKED_CONVOLUTIONS = 3


def stacked_default(layers=()):
    """Whether the evaluator stacks the chips of a pass by default: on TensorFlow, for networks
    (`layers`: their device layers) that start with a convolution and hold at most
    `MAX_STACKED_CONVOLUTIONS`, where it was measured to pay.

    On a 2-core CPU the stacked LeNet-5 pass is several times faster than one pass per chip;
    VGG11 at width 1/8 (8 convolutions, 360 images, 31 sigmas x 100 chips) is 1.8x slower
    stacked and the zoo's MLP 3x slower (`benchmarks/RESULTS.md`). It computes the same on JAX
    and torch (`stacked=True`), but was not timed there.
    """
    convolutions = sum("Conv" in type(layer).__name__ for layer in layers)
    starts_with_conv = bool(layers) and "Conv" in type(layers[0]).__name__
    return keras.backend.backend() == "tensorflow" and starts_with_conv and convolutions <= MAX_STACKED_CONVOLUTIONS


def auto_stacked_chips(model, batch_size, most=_MOST_STACKED):
    """How many chips a stacked pass holds: at most `most`, within a memory budget.

    A stacked pass holds, per chip, one copy of the widest layer's output and
    of the noisy weights (drawn, then rearranged for the grouped kernels).
    """
    widest = max(_output_floats(model), default=1)
    weights = sum(math.prod(layer.kernel.shape) for layer in device_layers_of(model))
    per_chip = 4 * (batch_size * widest + 2 * weights)
    return int(max(1, min(most, _STACKED_BYTES // per_chip)))


def auto_chips_per_pass(model, batch_size):
    """4, 2 or 1 chips at once: as many as keep their activations within budget.

    Independent chips that run at once overlap on the CPU cores, which makes
    a chip cheaper than a pass of its own.
    """
    per_chip = _activation_bytes(model, batch_size)
    for group in (4, 2):
        if group * per_chip <= _CHIP_GROUP_BYTES:
            return group
    return 1


def _activation_bytes(model, batch_size):
    """The bytes of every layer's float32 output for `batch_size` examples (one chip)."""
    return 4 * batch_size * max(sum(_output_floats(model)), 1)


def _output_floats(model):
    """The floats per example of each layer's output (and of the model's inputs)."""
    shapes = []
    for layer in walk_layers(model, include_self=True):
        if isinstance(layer, keras.Sequential):
            # `Sequential.layers` hides its input layer; its output is the input.
            shapes += [t.shape for t in layer.inputs]
        if layer is model:
            continue
        try:
            shapes.append(layer.output.shape)
        except (AttributeError, ValueError, TypeError):
            continue
    return [math.prod(d for d in shape[1:] if d is not None) for shape in shapes]


def compile_forward(fn, model, own_variables=(), jit_compile=False):
    """Returns `run(*args)` calling `fn(variable_mapping, *args)` compiled.

    Every argument is a tensor (or a list of tensors) whose first axis may
    change from call to call (chips, examples) without a retrace.

    Args:
        fn: a function of `(variable_mapping, *args)`; `variable_mapping`
            is a list of `(variable, value)` pairs that `fn` must put in
            its `keras.StatelessScope` (empty unless the backend is JAX).
        model: the model whose variables `fn` reads.
        own_variables: variables `fn` maps itself (left out of the mapping).
        jit_compile: TensorFlow only: compile with XLA.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = []

        def run(*args):
            if not compiled:
                # One trace for all chip counts and batch sizes.
                signature = tree.map_structure(
                    lambda t: tf.TensorSpec([None] + list(t.shape[1:]) if t.shape.rank else [], t.dtype),
                    list(args),
                )
                compiled.append(
                    tf.function(
                        lambda *a: fn([], *a), input_signature=signature, jit_compile=bool(jit_compile)
                    )
                )
            return compiled[0](*args)

        return run
    if backend == "jax":
        import jax

        own = {id(v) for v in own_variables}
        passed = [v for v in model.variables if id(v) not in own]

        def pure(values, *args):
            return fn(list(zip(passed, values)), *args)

        compiled = jax.jit(pure)
        return lambda *args: compiled([v.value for v in passed], *args)
    if backend == "torch":
        import torch

        def run(*args):
            with torch.no_grad():
                return fn([], *args)

        return run
    return lambda *args: fn([], *args)


def grouped_conv(inputs, kernel, strides, padding, dilation_rate):
    """A `channels_last` convolution whose kernel sees `channels / kernel.shape[-2]` groups of inputs.

    Keras compiles a grouped convolution with XLA on TensorFlow, whose CPU
    convolutions are several times slower than TensorFlow's own (oneDNN or
    Eigen), which take groups natively: TensorFlow calls its convolution.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.convolution(
            inputs, kernel, strides=list(strides), padding=padding.upper(), dilations=list(dilation_rate)
        )
    return ops.conv(inputs, kernel, strides=list(strides), padding=padding, dilation_rate=dilation_rate,
                    data_format="channels_last")


def fuses_grouped_bias():
    """Whether a grouped convolution may be followed by its bias and activation (which TensorFlow fuses).

    TensorFlow's oneDNN kernels fuse them; its Eigen kernels refuse a fused
    grouped convolution at run time, so with oneDNN off, or not known to be
    on (`TF_ENABLE_ONEDNN_OPTS` unset), the bias is added where nothing fuses.
    """
    if keras.backend.backend() != "tensorflow":
        return True
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true")


def map_chips(fn, elems, output_specs, parallel=1):
    """`fn` applied to each entry of `elems` along axis 0, results stacked.

    Args:
        fn: maps one entry (a tree of tensors) to a tree of tensors.
        elems: a tree of tensors with a common first axis (the chips).
        output_specs: the tree of `(shape, dtype)` of one result.
        parallel: TensorFlow: how many chips may run at once.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.map_fn(
            fn, elems, fn_output_signature=_tf_specs(output_specs), parallel_iterations=parallel
        )
    # Elsewhere Keras's own map is the same loop (`jax.lax.map` on JAX); TensorFlow's above
    # differs only by running `parallel` chips at once, which is why it stays.
    return ops.map(fn, elems)


def _tf_specs(output_specs):
    import tensorflow as tf

    if isinstance(output_specs, list):
        return [_tf_specs(s) for s in output_specs]
    shape, dtype = output_specs
    return tf.TensorSpec(shape, dtype)
