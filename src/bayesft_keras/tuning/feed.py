"""How training arrays reach `model.fit`: one input pipeline per fit, one compiled call per epoch.

`model.fit(x, y)` on NumPy arrays rebuilds its input pipeline at every epoch, and calls its
compiled train step once per batch. For the small networks of a search both cost as much as
the training itself. LeNet-5 on 3,500 MNIST digits, 20 epochs of 14 batches of 256, on the
2-core CPU of `benchmarks/RESULTS.md` (TensorFlow 2.21): 5.2 s from arrays, 3.8 s from one
repeated `tf.data` pipeline, and 3.5-3.7 s against 5.9 s on a busier run when the pipeline
also runs an epoch per call (`steps_per_execution`; same accuracy to the last digit).

On the TensorFlow backend `array_feed` builds that pipeline once: the same batches as
`fit` on arrays, reshuffled every epoch from a seed. `BayesFTHyperModel.fit` uses it and sets
the epoch per call. Other backends, and data that is not a pair of arrays, keep Keras's path.
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
    import tensorflow as tf

    steps = math.ceil(len(x) / batch_size)
    # Shuffle indices and gather each batch: no second copy of the data in a shuffle buffer.
    features, labels = tf.constant(x), tf.constant(y)
    order = tf.data.Dataset.range(len(x))
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        order = order.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    # `repeat` after `batch`: every epoch ends on its own short batch, as fit on arrays does.
    dataset = (
        order.batch(batch_size)
        .map(lambda index: (tf.gather(features, index), tf.gather(labels, index)))
        .repeat()
        .prefetch(2)
    )
    return dataset, steps


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
    fed = array_feed(x, y, kwargs.get("batch_size") or 32, shuffle=kwargs.get("shuffle", True))
    if fed is None:
        return args, kwargs
    dataset, steps = fed
    kwargs = {k: v for k, v in kwargs.items() if k not in ("x", "y", "batch_size", "shuffle", "validation_split")}
    return (dataset,), dict(kwargs, steps_per_epoch=steps, shuffle=False)
