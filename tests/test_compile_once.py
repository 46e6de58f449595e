"""One compiled model per search (`tuning.reuse`): traced once, and each trial as if built anew.

Also run on the torch backend by `test_backends.py` (the trace counts are TensorFlow's).
"""

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from bayesft_keras import architectures
from bayesft_keras.architectures import SiteDropout
from bayesft_keras.device.noise import LogNormalDrift
from bayesft_keras.evaluation import evaluator as evaluator_module
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.tuning.objective import DriftObjective
from bayesft_keras.tuning.tuner import BayesFTTuner

TF = keras.backend.backend() == "tensorflow"
TRIALS = 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((384, 8, 8, 1), dtype="float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) * 25).astype("int64") % 10
    return x, y


def hypermodel(**kwargs):
    kwargs.setdefault("noise", LogNormalDrift(0.5))
    return BayesFTHyperModel("mlp", input_shape=(8, 8, 1), epochs=2, batch_size=64, **kwargs)


@pytest.fixture
def counts(monkeypatch):
    """How often the train step and the evaluator's forward pass are traced (built)."""
    counts = {"train_step": 0, "compile_forward": 0}
    train_step = keras.Model.train_step
    compile_forward = evaluator_module.compile_forward

    def counted_train_step(self, data):
        counts["train_step"] += 1
        return train_step(self, data)

    def counted_compile_forward(*args, **kwargs):
        counts["compile_forward"] += 1
        return compile_forward(*args, **kwargs)

    monkeypatch.setattr(keras.Model, "train_step", counted_train_step)
    monkeypatch.setattr(evaluator_module, "compile_forward", counted_compile_forward)
    return counts


def search(data, directory, trials=TRIALS, **kwargs):
    x, y = data
    hm = kwargs.pop("hm", None) or hypermodel()
    tuner = BayesFTTuner(
        hm, DriftObjective(sigma=0.5, chips=4), (x[:128], y[:128]), max_trials=trials, seed=3,
        directory=str(directory), project_name="p", **kwargs,
    )
    tuner.search(x, y, verbose=0)
    return tuner


def results(tuner):
    """Per trial, in id order: its rates, score and the weights of its saved model."""
    rows = []
    for trial in sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id)):
        model = tuner.load_model(trial)
        rows.append((
            dict(trial.hyperparameters.values),
            trial.metrics.get_best_value("drift_accuracy"),
            [keras.ops.convert_to_numpy(w) for w in model.weights],
        ))
    return rows


def assert_same_trials(trials, others):
    """The same rates, scores and weights, trial by trial: bit for bit on TensorFlow (the same ops in
    the same order), within float tolerance where the backend may reorder."""
    assert len(trials) == len(others)
    for (hp, score, weights), (hp_other, score_other, weights_other) in zip(trials, others):
        assert hp == hp_other
        if TF:
            assert score == score_other
            for a, b in zip(weights, weights_other):
                np.testing.assert_array_equal(a, b)
        else:
            assert score == pytest.approx(score_other, abs=0.02)
            for a, b in zip(weights, weights_other):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not TF, reason="trace counts of TensorFlow's tf.function")
def test_a_search_traces_its_train_step_and_evaluator_once(data, tmp_path, counts):
    search(data, tmp_path / "one", trials=1, compile_once=True)
    one_trial = dict(counts)  # the evaluator builds a pass per chip-group size (`evaluation.stacked`)
    assert one_trial["train_step"] >= 1 and one_trial["compile_forward"] >= 1
    counts.update(train_step=0, compile_forward=0)
    search(data, tmp_path / "n", trials=TRIALS, compile_once=True)
    assert counts == one_trial  # n trials, the tracing of one
    counts.update(train_step=0, compile_forward=0)
    search(data, tmp_path / "fresh", trials=TRIALS, compile_once=False)
    assert counts == {k: TRIALS * v for k, v in one_trial.items()}


def test_a_reused_trial_equals_a_freshly_built_one(data, tmp_path):
    reused = results(search(data, tmp_path / "reused", compile_once=True))
    fresh = results(search(data, tmp_path / "fresh", compile_once=False))
    assert len(reused) == len(fresh) == TRIALS
    assert len({tuple(sorted(r[0].items())) for r in fresh}) == TRIALS  # three different rate sets
    assert_same_trials(reused, fresh)


def test_a_saved_trial_model_keeps_its_own_rates(data, tmp_path):
    tuner = search(data, tmp_path, compile_once=True)
    for trial in tuner.oracle.trials.values():
        model = tuner.load_model(trial)
        for site, rate in tuner.hypermodel.rates(trial.hyperparameters).items():
            layers = architectures.dropout_layers(model, site)
            assert layers and all(layer.rate == pytest.approx(rate) for layer in layers)
            assert all(float(keras.ops.convert_to_numpy(layer._rate)) == pytest.approx(rate) for layer in layers)


def test_a_search_whose_trials_differ_builds_per_trial_and_says_why(data, tmp_path, capsys):
    hm = hypermodel(search_space="extended", noise=LogNormalDrift(1.0))
    tuner = search(data, tmp_path / "auto", trials=1, hm=hm)
    assert tuner.compile_once is False
    assert "bayesft: one model per trial (search_space='extended'" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"`compile_once=True`, but .*search_space='extended'"):
        search(data, tmp_path / "forced", trials=1, hm=hypermodel(search_space="extended"), compile_once=True)


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_compile_once_takes_true_false_or_auto(data, tmp_path, value):
    with pytest.raises(ValueError, match=rf"`compile_once` must be one of \[True, False, 'auto'\]\. Received: compile_once={value!r}"):
        search(data, tmp_path, trials=1, compile_once=value)


# -- several trials at once ---------------------------------------------------------------


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="groups train on TensorFlow and JAX")
def test_trials_trained_in_a_group_equal_the_same_trials_trained_alone(data, tmp_path, capsys):
    # 4 trials, all before the GP starts (num_initial_points=4): a group proposes the same
    # values as one at a time. Groups of 3 then 1 (its empty places filled).
    grouped = search(data, tmp_path / "grouped", trials=4, compile_once=True, trials_at_once=3)
    alone = search(data, tmp_path / "alone", trials=4, compile_once=True)
    assert [t["group"] for _, t in sorted(grouped.timings.items())] == [3, 3, 3, 1]
    assert_same_trials(results(grouped), results(alone))
    assert "UserWarning" not in capsys.readouterr().err  # saved trials load whole


@pytest.mark.skipif(not TF, reason="trace counts of TensorFlow's tf.function")
def test_a_grouped_search_traces_its_group_once(data, tmp_path, counts):
    search(data, tmp_path / "one", trials=1, compile_once=True, trials_at_once=2)
    one_group = dict(counts)
    counts.update(train_step=0, compile_forward=0)
    search(data, tmp_path / "three", trials=5, compile_once=True, trials_at_once=2)
    # Three groups, the tracing of one: the group's train step and one evaluator.
    assert counts == one_group and 1 <= counts["train_step"] <= 2


def test_a_group_falls_back_to_one_trial_at_a_time_and_says_why(data, tmp_path, capsys):
    tuner = search(data, tmp_path / "a", trials=2, compile_once=False, trials_at_once=2)
    reason = "groups train on TensorFlow and JAX, not torch" if keras.backend.backend() == "torch" else "compile_once=False"
    assert f"bayesft: one trial at a time ({reason})." in capsys.readouterr().out
    assert all("group" not in t for t in tuner.timings.values())
    x, y = data
    hm = hypermodel()
    tuner = BayesFTTuner(hm, DriftObjective(sigma=0.5, chips=4), (x[:128], y[:128]), max_trials=1, seed=3,
                         directory=str(tmp_path / "b"), project_name="p", trials_at_once=2)
    tuner.search(x, y, validation_split=0.1, verbose=0)
    if keras.backend.backend() != "torch":
        assert "one trial at a time (a group cannot apply the fit arguments ['validation_split'])" in capsys.readouterr().out


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "two"])
def test_trials_at_once_takes_a_positive_int_or_auto(data, tmp_path, value):
    with pytest.raises(ValueError, match=rf"`trials_at_once` must be an int >= 1 or 'auto'\. Received: trials_at_once={value!r}"):
        search(data, tmp_path, trials=1, trials_at_once=value)


def test_auto_trains_one_trial_at_a_time_without_a_gpu():
    from bayesft_keras.tuning import group

    assert group.free_accelerator_memory() is None
    assert group.auto_size(hypermodel(), 64) == 1


# -- SiteDropout ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.7])
def test_site_dropout_drops_the_rate_and_rescales(rate):
    n = 20000
    layer = SiteDropout(rate, seed=1)
    y = keras.ops.convert_to_numpy(layer(np.ones((n,), "float32"), training=True))
    dropped = float(np.mean(y == 0))
    # 5 binomial standard errors.
    assert abs(dropped - rate) <= 5 * math.sqrt(max(rate * (1 - rate), 1e-12) / n) + 1e-9
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(np.ones((4,), "float32"))), 1.0)


def test_site_dropout_channelwise_drops_whole_feature_maps():
    layer = SiteDropout(0.5, channelwise=True, seed=2)
    y = keras.ops.convert_to_numpy(layer(np.ones((8, 5, 5, 16), "float32"), training=True))
    per_map = y.reshape(8, 25, 16)
    assert np.all(per_map.min(axis=1) == per_map.max(axis=1))  # a map is all kept or all dropped
    assert 0 < np.mean(per_map[:, 0] == 0) < 1


def test_site_dropout_rate_changes_without_a_new_model_and_stays_out_of_weights(tmp_path):
    inputs = keras.Input((64,))
    model = keras.Model(inputs, SiteDropout(0.2, name="dropout_a")(inputs))
    layer = model.get_layer("dropout_a")
    layer.set_rate(0.6)
    y = keras.ops.convert_to_numpy(model(np.ones((200, 64), "float32"), training=True))
    assert abs(np.mean(y == 0) - 0.6) < 5 * math.sqrt(0.24 / y.size)
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").get_layer("dropout_a").rate == pytest.approx(0.6)
    # A weights file (a warm start) of a model at other rates leaves the rate alone.
    other = keras.Model(inputs, SiteDropout(0.0, name="dropout_a")(inputs))
    other.save_weights(tmp_path / "w.weights.h5")
    model.load_weights(tmp_path / "w.weights.h5")
    assert layer.rate == 0.6 and float(keras.ops.convert_to_numpy(layer._rate)) == pytest.approx(0.6)


@pytest.mark.parametrize("rate", [1.0, -0.1, "0.5", True])
def test_site_dropout_refuses_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=rf"`rate` must be a number in \[0, 1\)\. Received: rate={rate!r}"):
        SiteDropout(rate)
    with pytest.raises(ValueError, match=r"Received: rate="):
        SiteDropout(0.1).set_rate(rate)


def test_the_model_files_of_a_shared_search_are_complete(data, tmp_path):
    tuner = search(data, tmp_path, compile_once=True)
    sizes = [Path(tuner.get_trial_dir(t.trial_id), "model.keras").stat().st_size for t in tuner.oracle.trials.values()]
    assert len(sizes) == TRIALS and min(sizes) > 10_000


def test_a_search_of_your_own_model_compiles_once(data, tmp_path, counts):
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])
    hm = BayesFTHyperModel.from_model(model, noise=LogNormalDrift(0.5), epochs=1, batch_size=64)
    assert hm.reuse_blocker() is None
    search(data, tmp_path / "one", trials=1, hm=hm)
    one_trial = dict(counts)
    counts.update(train_step=0, compile_forward=0)
    tuner = search(data, tmp_path / "three", trials=3, hm=hm)
    assert tuner.compile_once == "auto" and tuner._shared is not None
    assert counts["compile_forward"] == one_trial["compile_forward"]
    if TF:  # torch runs the train step eagerly: no trace to count
        assert counts == one_trial


def test_a_zoo_network_is_scored_by_the_stacked_chips_pass():
    # SiteDropout is the identity at inference: the evaluation's fast path takes it (TensorFlow's default).
    from bayesft_keras.evaluation import DriftEvaluator

    model = architectures.build("lenet5", noise=LogNormalDrift(1.0), dropout=0.3)
    assert DriftEvaluator(model).stacked is TF
