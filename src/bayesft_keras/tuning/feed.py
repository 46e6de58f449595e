"""How training arrays reach `model.fit`: one input pipeline per fit, one compiled call per epoch.

`model.fit(x, y)` on NumPy arrays rebuilds its input pipeline at every epoch, and calls its
compiled train step once per batch. For the small networks of a search both cost as much as
the training itself. LeNet-5 on 3,500 MNIST digits, 20 epochs of 14 batches of 256, on the
2-core CPU of `benchmarks/RESULTS.md` (TensorFlow 2.21): 5.2 s from arrays, 3.8 s from one
repeated `tf.data` pipeline, and 3.5-3.7 s against 5.9 s on a busier run when the pipeline
also runs an epoch per call (`steps_per_execution`; same accuracy to the last digit).

On the TensorFlow backend `array_feed` builds that pipeline once: the same batches as
`fit` on arrays, reshuffled every epoch from a seed. `BayesFTHyperModel.fit` uses it and sets
the epoch per call. On the other backends `ArrayBatches` gives the same batches from a seed
of its own, so that a trial's batch order does not depend on what else drew from the
backend's global generator (on torch, a model's first fit does). Data that is not a pair of
arrays keeps Keras's path.
"""

import math

import keras
import numpy as np


def array_feed(x, y, batch_size, *, shuffle=True, seed=None):
    """A repeated, per-epoch reshuffled `tf.data` pipeline over `(x, y)`, or `None`.

    Args:
        x: the training inputs, one array.
        y: the labels, one array with `len(y) == len(x)`.
        batch_size: examples per step; the last batch of an epoch may be smaller, as Keras's.
        shuffle: reshuffle the examples at every epoch (Keras's default for arrays).
        seed: seeds the shuffles; `None` draws one from NumPy's global generator, which
            `keras.utils.set_random_seed` seeds, so a seeded run trains on the same batches.

    Returns:
        `(dataset, steps_per_epoch)` for `model.fit(dataset, steps_per_epoch=...)`, or `None`
        when the feed does not apply (another backend than TensorFlow, or not two arrays).
    """
    if keras.backend.backend() != "tensorflow" or not (_is_array(x) and _is_array(y)):
        return None
    if len(x) != len(y) or len(x) == 0:
        return None  # let Keras raise its own message
    if shuffle and seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    return _gathered(x, y, [_batch_indices(len(x), batch_size, shuffle, seed)]), math.ceil(len(x) / batch_size)


def group_feed(x, y, batch_size, seeds, *, shuffle=True):
    """`array_feed` for several trials at once: per step, `((x_0..x_k-1), (y_0..y_k-1))`,
    batch `j` in the order of `seeds[j]`; returns `(dataset, steps_per_epoch)` (TensorFlow)."""
    return _gathered(x, y, [_batch_indices(len(x), batch_size, shuffle, s) for s in seeds], tuples=True), math.ceil(
        len(x) / batch_size
    )


def _batch_indices(n, batch_size, shuffle, seed):
    """The example indices of every batch, epoch after epoch, endlessly.

    Epoch `e` is a stateless shuffle seeded by `(seed, e)`: the order is a function of the
    seed alone, not of TensorFlow's global seed, which a search sets per trial.
    """
    import tensorflow as tf

    def epoch(e):
        indices = tf.range(n, dtype="int64")
        if shuffle:
            indices = tf.random.experimental.stateless_shuffle(indices, seed=tf.stack([tf.cast(seed, "int64"), e]))
        # Every epoch ends on its own short batch, as fit on arrays does.
        return tf.data.Dataset.from_tensor_slices(indices).batch(batch_size)

    return tf.data.Dataset.counter(dtype="int64").flat_map(epoch)


def _gathered(x, y, orders, tuples=False):
    import tensorflow as tf

    # Shuffle indices and gather each batch: no second copy of the data in a shuffle buffer.
    features, labels = tf.constant(x), tf.constant(y)

    def gather(*indices):
        xs = tuple(tf.gather(features, i) for i in indices)
        ys = tuple(tf.gather(labels, i) for i in indices)
        return (xs, ys) if tuples else (xs[0], ys[0])

    return tf.data.Dataset.zip(tuple(orders)).map(gather).prefetch(2)


class ArrayBatches(keras.utils.PyDataset):
    """The batches of `fit` on `(x, y)`, reshuffled at every epoch from a seed.

    Args:
        x, y: the training inputs and labels, arrays of one length.
        batch_size: examples per step; the last batch of an epoch may be smaller.
        shuffle: reshuffle the examples at every epoch.
        seed: seeds the shuffles; `None` draws one from NumPy's global generator.
    """

    def __init__(self, x, y, batch_size, *, shuffle=True, seed=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), bool(shuffle)
        if seed is None and shuffle:
            seed = int(np.random.randint(0, 2**31 - 1))
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(x))
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        batch = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[batch], self.y[batch]

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(len(self.x))


def epoch_per_call():
    """Whether a fit may run an epoch per compiled call (`steps_per_execution`) here.

    Not under a `tf.distribute` strategy: TensorFlow 2.21's multi-step loop of a
    `MirroredStrategy` fails ("You must feed a value for placeholder tensor").
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy()


def _is_array(value):
    return isinstance(value, np.ndarray) and value.ndim >= 1


def fed_arguments(args, kwargs):
    """`fit`'s arguments with a pair of training arrays given as one `tuning.feed` pipeline.

    Anything `array_feed` cannot reproduce exactly (sample or class weights, a validation
    split, a fixed number of steps) keeps the arrays.
    """
    if len(args) > 2 or kwargs.get("validation_split") or any(
        kwargs.get(k) is not None for k in ("sample_weight", "class_weight", "steps_per_epoch")
    ):
        return args, kwargs
    x = args[0] if args else kwargs.get("x")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    batch_size, shuffle = kwargs.get("batch_size") or 32, kwargs.get("shuffle", True)
    fed = array_feed(x, y, batch_size, shuffle=shuffle)
    rest = {k: v for k, v in kwargs.items() if k not in ("x", "y", "batch_size", "shuffle", "validation_split")}
    if fed is not None:
        dataset, steps = fed
        return (dataset,), dict(rest, steps_per_epoch=steps, shuffle=False)
    if keras.backend.backend() != "tensorflow" and _is_array(x) and _is_array(y) and len(x) == len(y) > 0:
        return (ArrayBatches(x, y, batch_size, shuffle=shuffle),), dict(rest, shuffle=False)
    return args, kwargs
