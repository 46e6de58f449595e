"""The extended search space, warm starts and the verdict in words."""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from bayesft_keras import data
from bayesft_keras.evaluation.report import DriftReport
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.device.noise import LogNormalDrift
from bayesft_keras.tuning import verdict
from bayesft_keras.tuning.config import TuneConfig

EXTENDED = ["init_scale", "weight_decay", "noise_injection_sigma", "learning_rate"]


def _fixed(hm, **values):
    hp = kt.HyperParameters()
    for name in hm.hyperparameter_names():
        hp.Fixed(name, values.get(name, 0.0))
    return hp


def test_extended_space_declares_the_recipe_and_builds_with_it():
    hm = BayesFTHyperModel("lenet5", noise=LogNormalDrift(1.5), search_space="extended")
    assert hm.hyperparameter_names()[-4:] == EXTENDED
    space = hm.hyperparameters()
    assert space.get("learning_rate") == pytest.approx(0.01 * 0.2)  # log range around the recipe's 0.01
    assert hm.recipe_values() == {
        "init_scale": 1.0, "weight_decay": 1e-4, "noise_injection_sigma": 0.0, "learning_rate": 0.01,
    }
    small = hm.build(_fixed(hm, init_scale=0.1, weight_decay=3e-3, learning_rate=0.004))
    plain = hm.build(_fixed(hm, init_scale=1.0, weight_decay=1e-4, learning_rate=0.01))
    # init_scale multiplies PyTorch's bound 1/sqrt(fan_in) (conv2: fan-in 150).
    assert np.abs(small.get_layer("conv2").get_weights()[0]).max() <= 0.1 / np.sqrt(150) * (1 + 1e-6)
    assert np.abs(plain.get_layer("conv2").get_weights()[0]).max() > 0.9 / np.sqrt(150)
    assert small.optimizer.l2 == pytest.approx(3e-3) and float(small.optimizer.learning_rate) == pytest.approx(0.004)
    assert small.get_layer("conv1").train_noise  # drift can be injected while training


def test_extended_space_injects_drift_while_training_only():
    ds = data.load("digits", input_shape=(28, 28, 1), max_examples=64)
    hm = BayesFTHyperModel("lenet5", noise=LogNormalDrift(1.5), search_space="extended", epochs=1)
    hp = _fixed(hm, init_scale=1.0, weight_decay=1e-4, learning_rate=0.01, noise_injection_sigma=0.7)
    model = hm.build(hp)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(self.model.get_layer("conv1").noise.sigma)

    hm.fit(hp, model, ds.x_train, ds.y_train, verbose=0, callbacks=[Probe()])
    assert seen and set(float(s) for s in seen) == {0.7}
    assert float(model.get_layer("conv1").noise.sigma) == 1.5  # the device's drift for evaluation


def test_extended_space_needs_a_sigma_noise_and_a_zoo_arch():
    with pytest.raises(ValueError, match=r"search_space='extended' needs an `arch` of the zoo"):
        BayesFTHyperModel("lenet5", search_space="extended")
    with pytest.raises(ValueError, match=r"`search_space` must be one of \['paper', 'extended'\]. Received: search_space='big'"):
        BayesFTHyperModel("lenet5", search_space="big")


def test_no_dropout_baseline_of_an_extended_search_keeps_the_recipe():
    from bayesft_keras.tuning.methods import fixed_rates

    hm = BayesFTHyperModel("lenet5", noise=LogNormalDrift(1.5), search_space="extended")
    values = fixed_rates(hm, 0.0).values
    assert values["dropout_conv1"] == 0.0 and values["init_scale"] == 1.0 and values["learning_rate"] == 0.01


@pytest.mark.slow
def test_warm_start_every_trial_starts_from_the_same_trained_weights(tmp_path):
    from bayesft_keras.tuning.search import run_search

    config = TuneConfig(
        arch="mlp", dataset="digits", trials=2, initial_points=2, epochs=1, warm_start_epochs=2,
        chips=2, report_chips=2, report_sigmas=(0.0, 1.0, 3), trial_curve_points=0, baselines=("no_dropout",),
        batch_size=128, width=0.25,
    )
    result = run_search(config, tmp_path, verbose=0)
    warm = tmp_path / "warm_start.weights.h5"
    assert warm.is_file() and set(result.methods) == {"bayesft", "no_dropout"}
    # A trial's model, built before its training, holds the warm-start weights (dropout has none).
    hm = BayesFTHyperModel("mlp", (8, 8, 1), 10, width=0.25, initial_weights=str(warm))
    a, b = hm.build(_fixed(hm)), hm.build(_fixed(hm, dropout_fc1=0.5))
    trained = BayesFTHyperModel("mlp", (8, 8, 1), 10, width=0.25).build(_fixed(hm))
    trained.load_weights(warm)
    for x, y, z in zip(a.get_weights(), b.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(x, z)
        np.testing.assert_array_equal(y, z)
    mtime = warm.stat().st_mtime_ns
    run_search(config, tmp_path, verbose=0)  # resumed: the warm start is not trained again
    assert warm.stat().st_mtime_ns == mtime


def _report(values, clean=0.9):
    values = np.asarray(values, dtype=float)
    return DriftReport(values=[0.0, 1.0], chip_metrics=np.stack([np.full_like(values, clean), values]), clean=clean)


def test_paired_gain_reads_chip_by_chip():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 100)  # chips differ a lot...
    better = base + 0.05 + rng.normal(0, 0.01, 100)  # ...but the gain on each chip is steady
    g = verdict.paired_gain(_report(better), _report(base), 1.0)
    assert g.chips == 100 and g.gain == pytest.approx(0.05, abs=0.003)
    assert g.stderr == pytest.approx(0.001, rel=0.25)  # 0.01 / sqrt(100), not the chips' spread / 10
    assert g.z > 30


def test_verdict_words_and_the_did_not_learn_flag():
    from types import SimpleNamespace

    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 50)
    methods = {
        "bayesft": SimpleNamespace(report=_report(base + 0.1), trials=8),
        "no_dropout": SimpleNamespace(report=_report(base)),
        "random": SimpleNamespace(report=_report(base + 0.1 + rng.normal(0, 0.05, 50), clean=0.11)),
    }
    result = SimpleNamespace(config=SimpleNamespace(sigma=1.0, trials=8), methods=methods, chance=0.1)
    lines = verdict.verdict_lines(result, {"no_dropout": "no dropout", "random": "random search", "bayesft": "BayesFT"})
    assert lines[0].startswith("BayesFT helped: against no dropout at sigma=1") and "over 50 chips" in lines[0]
    assert lines[1].startswith("No clear difference: against random search")
    assert lines[2].startswith("Warning: random search did not learn") and "0.110" in lines[2]
    assert len(lines) == 3

    methods["bayesft"].trials = 5  # a search that lost trials says so
    lines = verdict.verdict_lines(result, {"no_dropout": "no dropout", "random": "random search", "bayesft": "BayesFT"})
    assert lines[2].startswith("Warning: only 5 of the 8 BayesFT trials finished")
