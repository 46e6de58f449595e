"""JAX: the copies of a `TrialGroup` trained as one vectorized step, an epoch per compiled call.

On a GPU, k copies of a small network side by side in one Keras model still launch k times
as many small kernels per step, and Keras's loop dispatches every step from Python (about a
millisecond a step for LeNet-5 on an H200, where the arithmetic takes a tenth of that). Here
the train step of one copy (`model.stateless_call`, the loss, `optimizer.stateless_apply`) is
vectorized over the copies with `jax.vmap`, so each layer is one batched kernel for all k, and
an epoch of steps is one `jax.lax.scan` over batch indices into data kept on the device. The
step is the one Keras's JAX trainer takes (sparse categorical cross-entropy averaged over the
batch, then the optimizer), and each copy's batches are those `feed.ArrayBatches` gives its
seed, so a copy trains as its trial would alone, to float tolerance.
"""

import keras
import numpy as np

# JAX only: imported where used, so the package imports without it.


class VmappedTrainer:
    """Trains copies of one network together on JAX.

    Args:
        template: one of the copies: its layers define the step (its variables are not used).
        optimizer: the optimizer of one copy, built on `template.trainable_variables`;
            every copy starts from its initial state.
    """

    def __init__(self, template, optimizer):
        import jax
        import jax.numpy as jnp

        self.template = template
        self.optimizer = optimizer
        self.loss = keras.losses.SparseCategoricalCrossentropy()
        self._initial_optimizer = [jnp.array(v.value) for v in optimizer.variables]
        step = jax.vmap(self._step)

        def epoch(state, x, y, indices):  # indices: (steps, copies, batch)
            def body(state, batch):
                return step(state, x[batch], y[batch]), None

            return jax.lax.scan(body, state, indices)[0]

        self._epoch = jax.jit(epoch, donate_argnums=0)
        self._tail = jax.jit(lambda state, x, y, batch: step(state, x[batch], y[batch]), donate_argnums=0)
        self._data = None

    def _step(self, state, x, y):
        import jax

        trainable, non_trainable, optimizer = state

        def loss(trainable, non_trainable):
            y_pred, non_trainable = self.template.stateless_call(trainable, non_trainable, x, training=True)
            return self.loss(y, y_pred), non_trainable

        (_, non_trainable), grads = jax.value_and_grad(loss, has_aux=True)(trainable, non_trainable)
        trainable, optimizer = self.optimizer.stateless_apply(optimizer, grads, trainable)
        return trainable, non_trainable, optimizer

    def train(self, copies, seeds, x, y, epochs, batch_size, shuffle=True):
        """Trains `copies` (Keras models of one architecture) in place, copy `j` in the batch
        order of `seeds[j]`."""
        import jax.numpy as jnp

        if self._data is None or self._data[0] is not x or self._data[1] is not y:
            self._data = (x, y, jnp.asarray(x), jnp.asarray(y))
        device_x, device_y = self._data[2:]
        state = (
            _stacked([m.trainable_variables for m in copies]),
            _stacked([m.non_trainable_variables for m in copies]),
            [jnp.stack([v] * len(copies)) for v in self._initial_optimizer],
        )
        n = len(x)
        full = (n // batch_size) * batch_size
        orders = [_orders(n, epochs, seed, shuffle) for seed in seeds]  # per copy: (epochs, n)
        for e in range(epochs):
            order = np.stack([o[e] for o in orders])  # (copies, n)
            if full:
                indices = order[:, :full].reshape(len(copies), -1, batch_size).transpose(1, 0, 2)
                state = self._epoch(state, device_x, device_y, jnp.asarray(indices))
            if full < n:  # the epoch's short last batch, as Keras's
                state = self._tail(state, device_x, device_y, jnp.asarray(order[:, full:]))
        trainable, non_trainable, _ = state
        for j, model in enumerate(copies):
            for variable, value in zip(model.trainable_variables, trainable):
                variable.assign(value[j])
            for variable, value in zip(model.non_trainable_variables, non_trainable):
                variable.assign(value[j])


def _stacked(variable_lists):
    import jax.numpy as jnp

    return [jnp.stack([v.value for v in vs]) for vs in zip(*variable_lists)]


def _orders(n, epochs, seed, shuffle):
    """The example order of every epoch, as `feed.ArrayBatches(..., seed=seed)` gives them
    under Keras's `fit`, which moves it on one epoch before the first (`tests/test_compile_once.py`
    checks the two against each other)."""
    if not shuffle:
        return np.tile(np.arange(n), (epochs, 1))
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs + 1)])[1:]
