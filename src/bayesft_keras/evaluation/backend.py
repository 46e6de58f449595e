"""The compiled pass with the Keras backend in use.

The traced function reads model variables, and each backend handles them its
own way: TensorFlow reads them inside `tf.function` (new values are seen
without a retrace), JAX needs their values passed in (`jax.jit` functions are
pure), torch runs eagerly without autograd. Chips are mapped over inside the
compiled function: TensorFlow runs `parallel` of them at once
(`auto_chips_per_pass` picks how many).
"""

import math

import keras
from keras import ops
from keras import tree

from bayesft_keras.device.walk import walk_layers

# Activation memory that several chips of one pass may take together.
_CHIP_GROUP_BYTES = 512 * 2**20


def auto_chips_per_pass(model, batch_size):
    """4, 2 or 1 chips at once: as many as keep their activations within budget.

    Independent chips that run at once overlap on the CPU cores, which makes
    a chip cheaper than a pass of its own.
    """
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
    floats = sum(math.prod(d for d in shape[1:] if d is not None) for shape in shapes)
    per_chip = 4 * batch_size * max(floats, 1)
    for group in (4, 2):
        if group * per_chip <= _CHIP_GROUP_BYTES:
            return group
    return 1


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
