"""Monte Carlo drift evaluation: statistics, reproducibility, chips, metrics, bad input."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bayesft_keras as bk  # noqa: E402
from bayesft_keras import evaluation  # noqa: E402
from bayesft_keras.data import load  # noqa: E402


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=512), -1) == y))


def _weights(model):
    return [np.array(v.numpy()) for v in model.weights]


def test_sigma_zero_is_the_clean_metric_exactly(trained, digits):
    report = bk.evaluate_drift(trained, digits, sigmas=[0.0, 0.5], chips=6, seed=0, progress=False)
    clean = _accuracy(trained, digits.x_test, digits.y_test)
    assert clean > 0.8
    assert report.clean == clean
    assert np.all(report.chip_metrics[0] == report.clean)
    row = report.summary()[0]
    assert row["mean"] == row["min"] == row["p5"] == row["p95"] == clean and row["std"] == 0.0
    # Noise does act at sigma > 0.
    assert np.unique(report.chip_metrics[1]).size > 1


def test_mean_accuracy_does_not_increase_with_sigma(trained, digits):
    sigmas = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5]
    chips = 20
    report = bk.evaluate_drift(trained, digits, sigmas=sigmas, chips=chips, seed=3, progress=False)
    mean, se = report.mean(), report.std() / np.sqrt(chips)
    for i in range(len(sigmas) - 1):
        # An increase may only be Monte Carlo error: within 3 standard errors of the difference.
        assert mean[i + 1] <= mean[i] + 3 * np.hypot(se[i], se[i + 1]) + 1e-12, (i, mean)
    # ... and the drop over the whole range is far beyond that error.
    assert mean[-1] < report.clean - 10 * se[-1] - 0.1


def test_percentiles_ordered_and_yield_matches_chips(trained, digits):
    report = bk.evaluate_drift(
        trained, digits, sigmas=[0.4, 0.8, 1.2], chips=15, seed=5, threshold=0.6, progress=False
    )
    chips = report.chip_metrics
    for row, values in zip(report.summary(), chips):
        assert row["min"] <= row["p5"] <= row["p50"] <= row["p95"] <= row["max"]
        assert row["min"] == values.min() and row["max"] == values.max()
        assert row["yield"] == np.count_nonzero(values >= 0.6) / 15
    assert np.array_equal(report.yield_at(0.0), np.ones(3))
    assert np.array_equal(report.yield_at(1.01), np.zeros(3))
    # A threshold exactly at a chip's value counts that chip ("at or above").
    value = chips[1, 0]
    assert report.yield_at(value)[1] == np.count_nonzero(chips[1] >= value) / 15 > 0


def test_same_seed_same_report_bit_for_bit(trained, digits):
    kwargs = dict(sigmas=[0.0, 0.7, 1.4], chips=5, progress=False)
    first = bk.evaluate_drift(trained, digits, seed=11, **kwargs)
    second = bk.evaluate_drift(trained, digits, seed=11, **kwargs)
    other = bk.evaluate_drift(trained, digits, seed=12, **kwargs)
    assert first.to_json() == second.to_json()
    assert not np.array_equal(first.chip_metrics[1:], other.chip_metrics[1:])


def test_chips_are_independent_across_values(trained, digits):
    report = bk.evaluate_drift(trained, digits, sigmas=[0.8, 0.8], chips=10, seed=0, progress=False)
    assert np.unique(report.chip_seeds).size == 20
    assert not np.array_equal(report.chip_metrics[0], report.chip_metrics[1])


def test_each_chip_is_the_resampled_device_model(trained, digits):
    report = bk.evaluate_drift(trained, digits, sigmas=[0.9], chips=3, seed=2, progress=False)
    device = bk.convert(trained, noise=bk.LogNormalDrift(0.9))
    for chip, chip_seed in enumerate(report.chip_seeds[0]):
        bk.resample(device, int(chip_seed))
        assert report.chip_metrics[0, chip] == _accuracy(device, digits.x_test, digits.y_test)


def test_chips_per_pass_and_batching_do_not_change_results(trained, digits):
    kwargs = dict(sigmas=[0.5, 1.0], chips=5, seed=4, progress=False)
    reference = bk.evaluate_drift(trained, digits, **kwargs)
    grouped = bk.evaluate_drift(trained, digits, chips_per_pass=2, **kwargs)  # 2 + 2 + 1
    batched = bk.evaluate_drift(trained, digits, batch_size=100, **kwargs)  # 360 = 3 x 100 + 60
    assert np.array_equal(grouped.chip_metrics, reference.chip_metrics)
    assert np.array_equal(batched.chip_metrics, reference.chip_metrics)
    assert batched.clean == reference.clean


def test_callers_models_are_left_untouched(trained, digits):
    before = _weights(trained)
    bk.evaluate_drift(trained, digits, sigmas=[1.0], chips=2, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(trained)))
    assert not any(isinstance(layer, bk.layers.DeviceLayerMixin) for layer in trained.layers)

    device = bk.convert(trained, noise=bk.LogNormalDrift(0.3), bits=6)
    bk.resample(device, 7)
    before = _weights(device)  # kernels and device state (chip seed, sigma, switch)
    bk.evaluate_drift(device, digits, sigmas=[0.0, 1.0], chips=2, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(device)))
    assert device.layers[0].noise == bk.LogNormalDrift(0.3)


def test_device_model_keeps_its_settings(trained, digits):
    device = bk.convert(trained, noise=bk.LogNormalDrift(0.3), bits=3)
    report = bk.evaluate_drift(device, digits, sigmas=[0.0, 0.5], chips=3, progress=False)
    with bk.noise_off(device):
        quantized_clean = _accuracy(device, digits.x_test, digits.y_test)
    assert report.bits == 3
    assert report.noise == bk.noise.serialize(bk.LogNormalDrift(0.3))
    assert report.clean == quantized_clean
    # 3-bit weights are visibly coarser than the float model.
    assert quantized_clean != _accuracy(trained, digits.x_test, digits.y_test)


def test_sweeps_any_parameter_of_any_noise_model(trained, digits):
    report = bk.evaluate_drift(
        trained, digits, noise=bk.StuckAtFaults(), param="p_low", values=[0.0, 0.1, 0.4], chips=8, progress=False
    )
    assert report.param == "p_low"
    assert np.all(report.chip_metrics[0] == report.clean)
    mean, se = report.mean(), report.std() / np.sqrt(8)
    assert mean[2] < mean[0] - 5 * se[2]
    composed = bk.evaluate_drift(
        trained,
        digits,
        noise=bk.Compose([bk.LogNormalDrift(0.2), bk.ProgrammingNoise(0.0)]),
        param="1.std",
        values=[0.0, 0.5],
        chips=4,
        progress=False,
    )
    # At std 0 only the drift of 0.2 remains: chips vary, and differ from the clean model.
    assert composed.param == "1.std" and np.unique(composed.chip_metrics[0]).size > 1


def test_metrics_accuracy_keras_metrics_and_callables(trained, digits):
    kwargs = dict(sigmas=[0.0, 0.8], chips=4, seed=9, progress=False)
    accuracy = bk.evaluate_drift(trained, digits, **kwargs)
    by_name = bk.evaluate_drift(trained, digits, metric="sparse_categorical_accuracy", **kwargs)
    instance = keras.metrics.SparseCategoricalAccuracy()
    by_instance = bk.evaluate_drift(trained, digits, metric=instance, **kwargs)

    def numpy_accuracy(y_true, y_pred):
        return np.mean(np.argmax(y_pred, -1) == y_true)

    by_callable = bk.evaluate_drift(trained, digits, metric=numpy_accuracy, **kwargs)
    one_hot = bk.evaluate_drift(trained, (digits.x_test, np.eye(10)[digits.y_test]), **kwargs)
    for other in (by_name, by_instance, by_callable, one_hot):
        np.testing.assert_allclose(other.chip_metrics, accuracy.chip_metrics, rtol=1e-6)
    assert by_callable.metric == "numpy_accuracy" and by_name.metric == "sparse_categorical_accuracy"
    assert float(instance.result()) == 0.0  # the caller's metric object kept its own state

    loss = bk.evaluate_drift(trained, digits, metric="sparse_categorical_crossentropy", **kwargs)
    expected = keras.losses.sparse_categorical_crossentropy(
        digits.y_test, trained.predict(digits.x_test, verbose=0)
    )
    np.testing.assert_allclose(loss.clean, float(np.mean(expected)), rtol=1e-5)
    assert loss.mean()[1] > loss.clean  # drift makes the loss worse


def test_a_kept_evaluator_is_the_report_mean_and_follows_the_weights(trained, digits):
    # The tuner's pattern: one compiled evaluator, the model's weights copied in again.
    x, y = digits.x_test, digits.y_test
    report = bk.evaluate_drift(trained, (x, y), sigmas=[0.8], chips=6, seed=3, progress=False)
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    evaluator = evaluation.DriftEvaluator(model)
    evaluator.set_data(x, y)
    grid = evaluation.chip_seed_grid(3, 1, 6)

    def score():
        evaluator.sync_weights()
        return float(np.mean(evaluator.sweep("sigma", [0.8], grid)))

    assert score() == report.mean()[0]
    assert score() == report.mean()[0]  # the same compiled pass again
    # `sync_weights` copies the model's current weights.
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    assert score() == pytest.approx(np.mean(y == 0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sigmas=[0.0, -0.1]), "sigma"),
        (dict(chips=0), "chips"),
        (dict(metric="no_such_metric"), "no_such_metric"),
        (dict(seed=-1), "seed"),
        (dict(param="p_low"), "p_low"),
        (dict(noise=bk.StuckAtFaults(), param="p_low"), "values"),
        (dict(sigmas=[]), "values"),
        (dict(threshold="high"), "threshold"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(trained, digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bk.evaluate_drift(trained, digits, progress=False, **{"chips": 2, **kwargs})


def test_bad_data_raises_clear_value_errors(trained, digits):
    with pytest.raises(ValueError, match=r"\(28, 28, 1\) do not match the model's input shape \(8, 8, 1\)"):
        bk.evaluate_drift(trained, (np.zeros((4, 28, 28, 1)), np.zeros(4)), chips=1, progress=False)
    with pytest.raises(ValueError, match="one label per example"):
        bk.evaluate_drift(trained, (digits.x_test, digits.y_test[:5]), chips=1, progress=False)
    with pytest.raises(ValueError, match="pair"):
        bk.evaluate_drift(trained, digits.x_test, chips=1, progress=False)
    with pytest.raises(ValueError, match="built"):
        bk.evaluate_drift(keras.Sequential([keras.layers.Dense(2)]), digits, chips=1, progress=False)


def test_progress_callback_counts_every_chip(trained, digits):
    calls = []
    bk.evaluate_drift(
        trained, digits, sigmas=[0.1, 0.2], chips=3, chips_per_pass=2, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (6, 6) and [d for d, _ in calls] == sorted(d for d, _ in calls)


_TORCH_SCRIPT = r"""
import numpy as np, keras
import bayesft_keras as bk
from bayesft_keras import evaluation
assert keras.backend.backend() == "torch"
rng = np.random.default_rng(0)
x = rng.random((200, 6, 6, 1), dtype="float32")
y = (x.reshape(200, -1)[:, :18].sum(1) > x.reshape(200, -1)[:, 18:].sum(1)).astype("int32")
model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(2)])
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, epochs=5, verbose=0)
kw = dict(sigmas=[0.0, 1.0], chips=3, seed=1, progress=False)
a = bk.evaluate_drift(model, (x, y), **kw)
b = bk.evaluate_drift(model, (x, y), chips_per_pass=2, batch_size=64, **kw)
assert a.to_json() == b.to_json()
assert np.all(a.chip_metrics[0] == a.clean) and np.unique(a.chip_metrics[1]).size > 1
device = bk.convert(model, noise=bk.LogNormalDrift(1.0))
bk.resample(device, int(a.chip_seeds[1, 0]))
assert a.chip_metrics[1, 0] == np.mean(np.argmax(device.predict(x, verbose=0), -1) == y)
ev = evaluation.DriftEvaluator(model)
ev.set_data(x, y)
assert ev.sweep("sigma", [0.0], evaluation.chip_seed_grid(0, 1, 2)).mean() == a.clean
print("TORCH-OK", a.clean, a.mean())
"""


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None and not os.environ.get("CI"),
    reason="torch not installed (pip install torch==2.13.0); CI requires it",
)
@pytest.mark.slow
def test_engine_runs_on_torch_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="torch")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", _TORCH_SCRIPT], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0 and "TORCH-OK" in result.stdout, result.stderr[-3000:]
