"""The stacked drift pass (issue 15): the per-chip pass's metrics, chips functions of their seeds."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bayesft_keras as bk  # noqa: E402
from bayesft_keras.evaluation import DriftEvaluator  # noqa: E402
from bayesft_keras.evaluation import chip_seed_grid  # noqa: E402
from bayesft_keras.evaluation import stacked as stacked_lib  # noqa: E402

N = 160


def _data(shape=(12, 12, 1), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N,) + shape, dtype="float32")
    y = rng.integers(0, classes, N).astype("int32")
    return x, y


def _lenet_like(noise=None, bits=None):
    """LeNet-5's layer kinds: a shared first conv, pooling, a grouped conv, a conv covering its input."""
    noise = noise or bk.LogNormalDrift(0.0)
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            bk.ReRAMConv2D(3, 3, activation="relu", noise=noise, bits=bits),
            keras.layers.SpatialDropout2D(0.2),
            keras.layers.MaxPooling2D(2),
            bk.ReRAMConv2D(5, 3, activation="relu", noise=noise, bits=bits),
            keras.layers.BatchNormalization(),
            bk.ReRAMConv2D(8, 3, noise=noise, bits=bits),  # 3x3 window on a 3x3 input
            keras.layers.Activation("tanh"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            bk.ReRAMDense(6, activation="relu", noise=noise, bits=bits),
            bk.ReRAMDense(4, activation="softmax", noise=noise, bits=bits),
        ]
    )


def _functional_conv1d(noise):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 3))
    x = bk.ReRAMConv1D(4, 3, padding="same", strides=2, activation="relu", noise=noise)(inputs)
    x = keras.layers.AveragePooling1D(2)(x)
    x = bk.ReRAMConv1D(6, 2, padding="same", dilation_rate=2, noise=noise)(x)
    x = keras.layers.LeakyReLU(0.1)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = bk.ReRAMDense(5, noise=None)(x)  # an ideal layer between noisy ones
    outputs = bk.ReRAMDense(3, noise=noise)(x)
    return keras.Model(inputs, outputs)


def _mlp(noise):
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Rescaling(2.0),  # before any noisy layer: run once for all chips
            bk.ReRAMDense(7, activation="gelu", noise=noise),
            keras.layers.LayerNormalization(),
            bk.ReRAMDense(3, noise=noise, use_bias=False),
            keras.layers.Softmax(),
        ]
    )


def _first_output(y_true, y_pred):
    """A metric as sensitive to float rounding as the outputs themselves."""
    return np.asarray(y_pred)[:, 0]


def _pair(model, x, y, **kwargs):
    fast = DriftEvaluator(model, stacked=True, **kwargs)
    slow = DriftEvaluator(model, stacked=False, **kwargs)
    for evaluator in (fast, slow):
        evaluator.set_data(x, y)
    assert fast.stacked and not slow.stacked
    return fast, slow


CASES = {
    "lenet_like": (_lenet_like, (12, 12, 1), 4),
    "lenet_like_4bit": (lambda noise: _lenet_like(noise, bits=4), (12, 12, 1), 4),
    "conv1d_functional": (_functional_conv1d, (16, 3), 3),
    "mlp": (_mlp, (10,), 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stacked_pass_gives_the_per_chip_metrics(case):
    build, shape, classes = CASES[case]
    model = build(bk.LogNormalDrift(0.0))
    x, y = _data(shape, classes)
    grid = chip_seed_grid(3, 3, 5)
    sigmas = [0.0, 0.4, 1.2]
    for metric, exact in (("accuracy", True), (_first_output, False)):
        fast, slow = _pair(model, x, y, metric=metric, chips_per_pass=3)  # groups of 3 + 2
        got, want = fast.sweep("sigma", sigmas, grid), slow.sweep("sigma", sigmas, grid)
        assert got.shape == want.shape == (3, 5)
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # The noise acts (distinct chips at sigma > 0) and sigma = 0 is the clean model.
        assert np.unique(want[2]).size > 1
        np.testing.assert_allclose(got[0], fast.clean_metric(), rtol=1e-6)
        np.testing.assert_allclose(fast.clean_metric(), slow.clean_metric(), rtol=1e-6)


@pytest.mark.parametrize(
    "noise",
    [bk.StuckAtFaults(0.1, 0.05), bk.Compose([bk.ProgrammingNoise(0.1), bk.LogNormalDrift(0.3)])],
    ids=["stuck_at", "compose"],
)
def test_stacked_pass_draws_every_noise_model_as_the_per_chip_pass(noise):
    model = _lenet_like(noise)
    x, y = _data()
    fast, slow = _pair(model, x, y, metric=_first_output)
    seeds = chip_seed_grid(0, 1, 4)[0]
    np.testing.assert_allclose(fast.chip_metrics(seeds), slow.chip_metrics(seeds), rtol=1e-5, atol=1e-6)


def test_a_chip_is_a_function_of_its_seed_alone():
    model = _lenet_like()
    x, y = _data()
    seeds = chip_seed_grid(7, 1, 6)[0]
    for metric in ("accuracy", _first_output):
        evaluator = DriftEvaluator(model, metric=metric)
        evaluator.set_data(x, y)
        evaluator.set_param("sigma", 0.8)
        among = evaluator.chip_metrics(seeds)
        alone = [evaluator.chip_metrics([s])[0] for s in seeds[[0, 3, 5]]]
        reordered = evaluator.chip_metrics(seeds[::-1])[::-1]
        np.testing.assert_allclose(alone, among[[0, 3, 5]], rtol=1e-6)
        np.testing.assert_allclose(reordered, among, rtol=1e-6)
        assert np.unique(among).size > 1
    # ... and it is the chip that `resample` programs into the model.
    device = bk.convert(model, noise=bk.LogNormalDrift(0.8))
    evaluator = DriftEvaluator(model)
    evaluator.set_data(x, y)
    evaluator.set_param("sigma", 0.8)
    for seed, metric in zip(seeds, evaluator.chip_metrics(seeds)):
        bk.resample(device, int(seed))
        assert metric == np.mean(np.argmax(device.predict(x, verbose=0), -1) == y)


def test_the_default_evaluator_is_stacked_on_tensorflow_and_reports_match():
    model = _lenet_like()
    x, y = _data()
    assert DriftEvaluator(model).stacked == (keras.backend.backend() == "tensorflow")
    kwargs = dict(sigmas=[0.3, 0.9], chips=5, seed=2, progress=False)
    report = bk.evaluate_drift(model, (x, y), **kwargs)
    again = bk.evaluate_drift(model, (x, y), chips_per_pass=2, batch_size=50, **kwargs)
    np.testing.assert_array_equal(again.chip_metrics, report.chip_metrics)
    slow = DriftEvaluator(model, stacked=False)
    slow.set_data(x, y)
    np.testing.assert_array_equal(slow.sweep("sigma", [0.3, 0.9], report.chip_seeds), report.chip_metrics)


def test_weights_synced_after_tracing_are_scored_without_a_retrace(monkeypatch):
    traces = []
    forward = stacked_lib.stacked_forward
    monkeypatch.setattr(stacked_lib, "stacked_forward", lambda *a: traces.append(1) or forward(*a))
    model = _lenet_like()
    x, y = _data()
    evaluator = DriftEvaluator(model, metric=_first_output, chips_per_pass=4)
    evaluator.set_data(x, y)
    seeds = chip_seed_grid(0, 1, 4)[0]
    evaluator.set_param("sigma", 0.5)
    before = evaluator.chip_metrics(seeds)
    traced = len(traces)
    assert traced >= 1
    for v in model.trainable_variables:
        v.assign(v.numpy() * 1.5)
    evaluator.sync_weights()
    after = evaluator.chip_metrics(seeds)
    assert not np.allclose(after, before)
    fresh = DriftEvaluator(model, metric=_first_output, chips_per_pass=4)
    fresh.set_data(x, y)
    fresh.set_param("sigma", 0.5)
    np.testing.assert_allclose(after, fresh.chip_metrics(seeds), rtol=1e-6)
    if keras.backend.backend() != "torch":  # torch runs eagerly: every call traces
        assert len(traces) == traced + 1  # the fresh evaluator's own trace only


def _branching(noise):
    inputs = keras.Input((10,))
    a = bk.ReRAMDense(4, noise=noise)(inputs)
    b = bk.ReRAMDense(4, noise=noise)(inputs)
    return keras.Model(inputs, keras.layers.Add()([a, b]))


@pytest.mark.parametrize(
    "build",
    [
        _branching,
        lambda noise: keras.Sequential(
            [keras.Input((10,)), bk.ReRAMDense(4, noise=noise, periphery=bk.Periphery(out_noise=0.1))]
        ),
        lambda noise: keras.Sequential([keras.Input((10,)), bk.ReRAMDense(4, noise=noise, input_bits=4)]),
        lambda noise: keras.Sequential(
            [keras.Input((2, 6, 6)), bk.ReRAMConv2D(2, 3, noise=noise, data_format="channels_first")]
        ),
    ],
    ids=["branches", "periphery", "dac", "channels_first"],
)
def test_models_that_cannot_stack_fall_back_to_the_per_chip_pass(build):
    model = build(bk.LogNormalDrift(0.5))
    assert not DriftEvaluator(model).stacked
    with pytest.raises(ValueError, match=r"stacked=True"):
        DriftEvaluator(model, stacked=True)


def test_branching_model_still_scores_per_chip():
    model = _branching(bk.LogNormalDrift(0.0))
    x = np.random.default_rng(0).random((N, 10), dtype="float32")
    y = np.random.default_rng(1).integers(0, 4, N).astype("int32")
    report = bk.evaluate_drift(model, (x, y), sigmas=[0.0, 1.0], chips=3, progress=False)
    assert np.all(report.chip_metrics[0] == report.clean) and np.unique(report.chip_metrics[1]).size > 1


@pytest.mark.parametrize("value", ["yes", 1, 0.0])
def test_bad_stacked_is_rejected_with_its_value(value):
    with pytest.raises(ValueError, match=r"`stacked` must be True, False or None\. Received: stacked=" + repr(value)):
        DriftEvaluator(_mlp(bk.LogNormalDrift(0.1)), stacked=value)


def test_chips_of_a_stacked_pass_fit_a_memory_budget():
    from bayesft_keras.evaluation.backend import auto_stacked_chips

    # LeNet-5 on 2,000 MNIST images: its widest output is 24 x 24 x 6 floats an image (28 MB a chip).
    lenet = keras.Sequential([keras.Input((28, 28, 1)), bk.ReRAMConv2D(6, 5), keras.layers.Flatten(), bk.ReRAMDense(10)])
    assert auto_stacked_chips(lenet, 2000) == 20
    assert auto_stacked_chips(lenet, 2000, most=7) == 7
    # 64 x 64 x 64 floats (1 MiB) an image: one chip of 2,048 images at a time, 4 of 256 images.
    wide = keras.Sequential([keras.Input((64, 64, 3)), bk.ReRAMConv2D(64, 3, padding="same")])
    assert auto_stacked_chips(wide, 2048) == 1
    assert auto_stacked_chips(wide, 256) == 4


_BACKEND_SCRIPT = r"""
import numpy as np, keras
import bayesft_keras as bk
from bayesft_keras.evaluation import DriftEvaluator, chip_seed_grid
import test_fast_sweep as t
for name in sorted(t.CASES):
    build, shape, classes = t.CASES[name]
    model = build(bk.LogNormalDrift(0.0))
    x, y = t._data(shape, classes)
    grid = chip_seed_grid(1, 2, 3)
    for metric in ("accuracy", t._first_output):
        fast, slow = t._pair(model, x, y, metric=metric, chips_per_pass=2)
        got, want = fast.sweep("sigma", [0.0, 1.0], grid), slow.sweep("sigma", [0.0, 1.0], grid)
        tol = 0 if metric == "accuracy" else 1e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        assert np.unique(want[1]).size > 1, (name, want)
print("STACKED-OK", keras.backend.backend())
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [{"KERAS_BACKEND": "jax"}, {"KERAS_BACKEND": "torch"}, {"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "0"}],
    ids=["jax", "torch", "tensorflow-eigen"],
)
def test_stacked_pass_on_other_backends_and_without_onednn(env, tmp_path):
    pytest.importorskip(env["KERAS_BACKEND"])
    here = Path(__file__).resolve().parent
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = os.pathsep.join([str(here.parent / "src"), str(here), full.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", _BACKEND_SCRIPT], env=full, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert result.returncode == 0 and "STACKED-OK" in result.stdout, result.stderr[-3000:]


def test_the_default_stacks_only_the_networks_where_it_was_measured_to_pay():
    # LeNet-5 (a narrow first convolution, 3 in all) is faster stacked; the MLP and VGG11 were slower.
    noise = bk.LogNormalDrift(1.0)
    tf = keras.backend.backend() == "tensorflow"
    assert DriftEvaluator(bk.architectures.build("lenet5", noise=noise)).stacked == tf
    assert not DriftEvaluator(bk.architectures.build("mlp", input_shape=(8, 8, 1), noise=noise)).stacked
    vgg = bk.architectures.build("vgg11", width=0.125, input_shape=(32, 32, 1), noise=noise)
    assert not DriftEvaluator(vgg).stacked
    assert DriftEvaluator(vgg, stacked=True).stacked  # still there when asked for
