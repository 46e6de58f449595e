"""Compiling a forward function with the Keras backend in use.

The function traced here reads model variables; each backend needs them
handled its own way: TensorFlow reads them inside `tf.function` (new values
are seen without a retrace), JAX needs their values passed in as arguments
(`jax.jit` functions are pure), torch runs eagerly without autograd.
"""

import keras


def compile_forward(fn, model, own_variables=(), jit_compile=False):
    """Returns ``run(*args)`` calling ``fn(variable_mapping, *args)`` compiled.

    Args:
        fn: a function of ``(variable_mapping, *args)``; ``variable_mapping``
            is a list of ``(variable, value)`` pairs that ``fn`` must put in
            its `keras.StatelessScope` (empty unless the backend is JAX).
        model: the model whose variables ``fn`` reads.
        own_variables: variables ``fn`` maps itself (left out of the mapping).
        jit_compile: TensorFlow only: compile with XLA.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(fn, jit_compile=bool(jit_compile))
        return lambda *args: compiled([], *args)
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
