"""Several trials trained together: k copies of a search's network in one model, one compiled step.

A small network leaves a GPU idle: LeNet-5's train step on an H200 takes about a millisecond,
most of it launching kernels. `TrialGroup` puts k copies of the network, one per trial, side
by side in one Keras model (input `x<j>` -> copy `j` -> output `j`) and trains them with one
compiled step. Each copy sees what its trial would see alone:

- its own initial weights, dropout rates and dropout seed states, copied from the model that
  `hypermodel.build` gives under the trial's seed (`tuning.reuse.copy_state`);
- its own batch order, from the seed its trial's fit would draw (`tuning.feed`);
- its own gradients: the loss is the sum of the copies' losses, so the gradient of copy `j`'s
  weights is that of its own loss; Adam, value clipping and coupled weight decay act on each
  weight alone, and the step counter is shared because the copies step together.

So a trial trained in a group ends with the weights it gets alone, to float tolerance (the
backend may order the arithmetic differently). On JAX the copies are not side by side in one
model but one vectorized step (`tuning.vmapped`): one batched kernel per layer for all k, and
an epoch per compiled call. The group is built and traced once per search;
a last group of fewer trials fills its empty places with copies of its first trial.
"""

import math

import keras
import numpy as np

from bayesft_keras.tuning import feed
from bayesft_keras.tuning import recipe as recipe_lib
from bayesft_keras.tuning.reuse import copy_state
from bayesft_keras.tuning.reuse import reset_optimizer


# "auto" never groups more: the oracle proposes a group's trials without their results.
AUTO_LIMIT = 8
# "auto" trains a network of more parameters alone: it keeps a GPU busy by itself. Measured on
# an H200 with JAX (benchmarks/RESULTS.md): LeNet-5 (44 k) trains 8x faster a trial in groups
# of 8; VGG11 (9.2 M, 65 % GPU use alone) slower in a group of 2 than one at a time.
AUTO_MAX_PARAMS = 2_000_000
# The `fit` arguments a group can apply to all its copies.
GROUP_FIT_ARGUMENTS = {"epochs", "batch_size", "verbose", "shuffle"}


def check_trials_at_once(value):
    if value == "auto" or isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(
        f"`trials_at_once` must be an int >= 1 or 'auto'. Received: trials_at_once={value!r}"
    )


def data_blocker(fit_args, fit_kwargs):
    """Why a group cannot train on these `fit` arguments (not two arrays, other options) or on
    this backend, or None."""
    if keras.backend.backend() == "torch":
        # Measured: on torch the copies of one model trained side by side diverge from the
        # trial alone, and on an H200 a group of 8 took as long per trial as one at a time.
        return "groups train on TensorFlow and JAX, not torch"
    if len(fit_args) != 2 or not all(isinstance(a, np.ndarray) for a in fit_args):
        return "a group trains on a pair of NumPy arrays"
    others = sorted(set(fit_kwargs) - GROUP_FIT_ARGUMENTS)
    if others:
        return f"a group cannot apply the fit arguments {others}"
    return None


def auto_size(hypermodel, batch_size, limit=AUTO_LIMIT):
    """How many copies of `hypermodel`'s network fit in half the free memory of the GPU: 1 on a
    CPU, and for a network of more than `AUTO_MAX_PARAMS` parameters.

    A copy needs its weights, gradients and two Adam moments, and about three times its
    activations for a batch (forward, backward, temporaries), in float32.
    """
    free = free_accelerator_memory()
    if free is None:
        return 1
    model = hypermodel.build(hypermodel.hyperparameters())
    if model.count_params() > AUTO_MAX_PARAMS:
        return 1
    activations = sum(
        math.prod(d for d in layer.output.shape[1:] if d) for layer in model.layers if hasattr(layer, "output")
    )
    per_copy = 4 * (4 * model.count_params() + 3 * batch_size * activations)
    return int(max(1, min(limit, free // 2 // max(per_copy, 1))))


def free_accelerator_memory():
    """Free bytes of the first GPU of the JAX or torch backend, or None."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "gpu":
                return None
            stats = device.memory_stats()
            return stats["bytes_limit"] - stats["bytes_in_use"]
        if backend == "torch":
            import torch

            return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
        # TensorFlow tells no free memory: there "auto" trains one trial at a time.
    except (RuntimeError, KeyError, TypeError):
        return None
    return None


def order_seed(shuffle=True):
    """The seed of a trial's batch order, drawn as its fit alone draws it (`tuning.feed`)."""
    return int(np.random.randint(0, 2**31 - 1)) if shuffle else None


class TrialGroup:
    """k copies of one network, trained together as k trials.

    Args:
        hypermodel: a `BayesFTHyperModel` whose trials share one architecture
            (`reuse_blocker()` is None).
        size: the number of copies, k >= 2.
    """

    def __init__(self, hypermodel, size):
        self.hypermodel = hypermodel
        self.size = int(size)
        self.model = None
        self.copies = []
        self._total_steps = None

    def train(self, models, seeds, x, y, epochs=None, batch_size=None, verbose=0, shuffle=True):
        """Trains copies of `models` (freshly built, one per trial) together on `(x, y)`.

        Args:
            models: up to `size` models from `hypermodel.build`, one per trial: their
                weights, rates and seed states are the copies' start.
            seeds: the batch-order seed of each trial (`order_seed`).
            x, y: the training arrays.
            epochs, batch_size: as the hypermodel's `fit` (None: the hypermodel's).
            verbose, shuffle: as `model.fit`.

        Returns:
            The trained copies, one per model: nested models of the group, to copy
            from (`tuning.reuse.copy_state`) before the next call.
        """
        if not 1 <= len(models) <= self.size or len(seeds) != len(models):
            raise ValueError(
                f"`models` must hold 1 to {self.size} models, with a seed each. "
                f"Received: {len(models)} models and {len(seeds)} seeds."
            )
        epochs = epochs or self.hypermodel.epochs
        batch_size = batch_size or self.hypermodel.batch_size
        steps = math.ceil(len(x) / batch_size)
        # Empty places train a copy of the first trial, whose result nobody reads.
        filled = list(models) + [models[0]] * (self.size - len(models))
        seeds = list(seeds) + [seeds[0]] * (self.size - len(models))
        if keras.backend.backend() == "jax":
            self._train_vmapped(filled, seeds, x, y, epochs, batch_size, shuffle)
            return self.copies[: len(models)]
        first = self.model is None
        if first:
            self._build(filled)
        else:
            for source, target in zip(filled, self.copies):
                copy_state(source, target)
        if self._total_steps != epochs * steps:
            self._compile(epochs * steps)
        elif not first:
            reset_optimizer(self.model.optimizer)
        data, fit_kwargs = self._feed(x, y, batch_size, seeds, shuffle)
        if self.model.train_function is None and feed.epoch_per_call():
            self.model.steps_per_execution = steps  # one compiled call per epoch, as a trial alone
        self.model.fit(data, epochs=epochs, verbose=verbose, **fit_kwargs)
        return self.copies[: len(models)]

    def _train_vmapped(self, models, seeds, x, y, epochs, batch_size, shuffle):
        from bayesft_keras.tuning.vmapped import VmappedTrainer

        if not self.copies:
            self.copies = [keras.models.clone_model(m) for m in models]
        for source, target in zip(models, self.copies):
            copy_state(source, target)
        total = epochs * math.ceil(len(x) / batch_size)
        if self._total_steps != total:
            optimizer = self.hypermodel.optimizer(total)
            optimizer.build(self.copies[0].trainable_variables)
            self._trainer = VmappedTrainer(self.copies[0], optimizer)
            self._total_steps = total
        self._trainer.train(self.copies, seeds, x, y, epochs, batch_size, shuffle)

    def _build(self, models):
        inputs = [keras.Input(tuple(models[0].input_shape[1:]), name=f"x{j}") for j in range(self.size)]
        self.copies = []
        outputs = []
        for j, source in enumerate(models):
            copy = keras.models.clone_model(source)
            copy.name = f"trial{j}"
            copy_state(source, copy)
            self.copies.append(copy)
            outputs.append(copy(inputs[j]))
        self.model = keras.Model(inputs, outputs, name=f"{models[0].name}_x{self.size}")

    def _compile(self, total_steps):
        optimizer = self.hypermodel.optimizer(total_steps)
        loss = ["sparse_categorical_crossentropy"] * self.size
        recipe_lib.compile_model(self.model, optimizer, total_steps, loss=loss, metrics=None)
        self._total_steps = total_steps

    def _feed(self, x, y, batch_size, seeds, shuffle):
        """Batches of each copy's own order: `((x_0..x_k-1), (y_0..y_k-1))` per step."""
        if keras.backend.backend() == "tensorflow":
            dataset, steps = feed.group_feed(x, y, batch_size, seeds, shuffle=shuffle)
            return dataset, {"steps_per_epoch": steps, "shuffle": False}
        return _GroupBatches([feed.ArrayBatches(x, y, batch_size, shuffle=shuffle, seed=s) for s in seeds]), {
            "shuffle": False
        }


class _GroupBatches(keras.utils.PyDataset):
    """The batches of several `ArrayBatches`, side by side."""

    def __init__(self, parts):
        super().__init__()
        self.parts = parts

    def __len__(self):
        return len(self.parts[0])

    def __getitem__(self, index):
        batches = [part[index] for part in self.parts]
        return tuple(b[0] for b in batches), tuple(b[1] for b in batches)

    def on_epoch_end(self):
        for part in self.parts:
            part.on_epoch_end()
