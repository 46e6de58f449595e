"""`array_feed`: one repeated input pipeline per fit, with the batches `fit` on arrays would give."""

import keras
import numpy as np
import pytest

from bayesft_keras.tuning.feed import array_feed

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the feed is TensorFlow's")


def _epochs(dataset, steps, epochs):
    it = iter(dataset)
    return [[next(it) for _ in range(steps)] for _ in range(epochs)]


def test_every_epoch_holds_every_example_once_in_a_new_order():
    x = np.arange(10, dtype="float32").reshape(10, 1)
    y = np.arange(10, dtype="int32")
    dataset, steps = array_feed(x, y, batch_size=4, seed=7)
    assert steps == 3
    orders = []
    for epoch in _epochs(dataset, steps, 3):
        assert [len(b[1]) for b in epoch] == [4, 4, 2]  # the last batch is short, as fit's
        labels = np.concatenate([b[1].numpy() for b in epoch])
        features = np.concatenate([b[0].numpy()[:, 0] for b in epoch])
        assert sorted(labels.tolist()) == list(range(10))
        np.testing.assert_array_equal(features, labels)  # pairs stay together
        orders.append(labels.tolist())
    # 10! orders: two epochs in the same order would be a 1 in 3.6 million coincidence.
    assert orders[0] != orders[1] != orders[2]


def test_a_seed_gives_the_same_batches_and_shuffle_false_keeps_the_order():
    x = np.random.default_rng(0).normal(size=(9, 2)).astype("float32")
    y = np.arange(9, dtype="int32")
    first = _epochs(*array_feed(x, y, 3, seed=1), 2)
    again = _epochs(*array_feed(x, y, 3, seed=1), 2)
    for a, b in zip(sum(first, []), sum(again, [])):
        np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    ordered = _epochs(*array_feed(x, y, 3, shuffle=False), 2)
    for epoch in ordered:
        assert np.concatenate([b[1].numpy() for b in epoch]).tolist() == list(range(9))


def test_the_feed_steps_aside_for_data_that_is_not_two_arrays():
    x = np.zeros((4, 2), "float32")
    assert array_feed([x], np.zeros(4), 2) is None
    assert array_feed(x, np.zeros(3), 2) is None  # Keras gives its own message for this


def test_a_network_trained_from_the_feed_learns_as_from_arrays():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")

    def trained(feed):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
        model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        if feed:
            dataset, steps = array_feed(x[:1200], y[:1200], 64, seed=0)
            model.fit(dataset, steps_per_epoch=steps, epochs=10, shuffle=False, verbose=0)
        else:
            model.fit(x[:1200], y[:1200], batch_size=64, epochs=10, verbose=0)
        return model.evaluate(x[1200:], y[1200:], verbose=0)[1]

    from_feed, from_arrays = trained(True), trained(False)
    # 597 test digits: an accuracy near 0.91 has a binomial standard error of 0.012, a
    # difference of two of them 0.017; trainings that differ only in batch order agree within 3.
    assert from_feed > 0.85 and from_arrays > 0.85
    assert abs(from_feed - from_arrays) < 0.05


def test_the_hypermodel_trains_an_epoch_per_call_unless_callbacks_watch_the_batches():
    from bayesft_keras import BayesFTHyperModel

    hm = BayesFTHyperModel("mlp", input_shape=(8, 8, 1), width=0.125, epochs=2, batch_size=16)
    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype="float32")
    y = np.arange(40) % 10
    model = hm.build(hm.hyperparameters())
    history = hm.fit(hm.hyperparameters(), model, x, y, verbose=0)
    assert model.steps_per_execution == 3 and len(history.history["loss"]) == 2  # ceil(40 / 16)
    assert int(model.optimizer.iterations.numpy()) == 6  # every step ran: the schedule is exact

    batches = []
    watcher = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    model = hm.build(hm.hyperparameters())
    hm.fit(hm.hyperparameters(), model, x, y, verbose=0, callbacks=[watcher])
    assert model.steps_per_execution == 1 and batches == [0, 1, 2, 0, 1, 2]
