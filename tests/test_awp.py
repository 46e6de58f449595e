"""AWP baseline: perturbation norm, undone before the update, PGD bounds, backends.

Also: both baselines (FTNA and AWP) end to end through `tune`.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from bayesft_keras import architectures
from bayesft_keras.baselines import awp

# Runs under every backend (here in-process on TensorFlow, in a subprocess on torch and JAX).
STEP_CHECK = textwrap.dedent(
    """
    import numpy as np, keras
    from bayesft_keras import architectures
    from bayesft_keras.baselines import awp, ftna

    def twin_step(gamma, epsilon=awp.EPSILON, **optimizer):
        keras.utils.set_random_seed(0)
        model = awp.awp_model(architectures.build("lenet5", width=0.5), gamma=gamma, epsilon=epsilon)
        model.compile(keras.optimizers.Adam(1e-2, **optimizer), "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.random((32, 28, 28, 1), dtype="float32")
        y = rng.integers(0, 10, 32).astype("int32")
        parts = model.compute_awp(x, y)  # at iteration 0, as the first train step
        before = [keras.ops.convert_to_numpy(v.value) for v in model.trainable_variables]
        model.train_on_batch(x, y)
        after = [keras.ops.convert_to_numpy(v.value) for v in model.trainable_variables]
        # The optimizer's own update from the gradients at the perturbed point, on a copy of the weights.
        copy = [keras.Variable(w) for w in before]
        gradients = [keras.ops.convert_to_tensor(g) for g in parts["gradients"]]
        keras.optimizers.Adam(1e-2, **optimizer).apply(gradients, copy)
        expected = [keras.ops.convert_to_numpy(v.value) for v in copy]
        return model, x, parts, before, after, expected

    def check_step(gamma=awp.GAMMA):
        model, x, parts, before, after, expected = twin_step(gamma, weight_decay=1e-2, clipvalue=0.1)
        ratios = {}
        for v, w, d in zip(model.trainable_variables, before, parts["perturbation"]):
            if len(v.shape) > 1:
                ratios[v.path] = float(np.linalg.norm(d) / np.linalg.norm(w))
            else:
                assert d is None, v.path  # biases are not perturbed
        assert len(ratios) == 5 and all(abs(r - gamma) < 1e-5 * gamma for r in ratios.values()), ratios
        moved = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
        error = max(float(np.abs(a - e).max()) for a, e in zip(after, expected))
        assert moved > 1e-3 and error < 1e-6, (moved, error)
        # The inputs were attacked within the L-inf ball and the [0, 1] range.
        assert np.abs(parts["inputs"] - x).max() <= awp.EPSILON + 1e-6
        assert parts["inputs"].min() >= 0.0 and parts["inputs"].max() <= 1.0
        return ratios, moved, error

    def check_perturbation_matters():
        _, _, plain, *_ = twin_step(0.0)
        _, _, perturbed, *_ = twin_step(0.05)
        return max(float(np.abs(a - b).max()) for a, b in zip(plain["gradients"], perturbed["gradients"]))

    def check_ftna():
        codebook = ftna.make_codebook()
        model, _ = ftna.build("mlp", input_shape=(8, 8, 1), width=0.5)
        model.compile("adam", ftna.CodewordMSE(codebook), metrics=[ftna.CodewordAccuracy(codebook)])
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, 64).astype("int32")
        model.fit(rng.random((64, 8, 8, 1), dtype="float32"), y, epochs=1, verbose=0)
        assert (keras.ops.convert_to_numpy(ftna.decode(codebook[y], codebook)) == y).all()
    """
)
namespace = {}
exec(compile(STEP_CHECK, "STEP_CHECK", "exec"), namespace)


@pytest.mark.slow
def test_perturbation_has_relative_norm_gamma_per_kernel_and_is_undone_before_the_update():
    ratios, moved, error = namespace["check_step"]()
    assert set(ratios) == {f"{n}/kernel" for n in ("conv1", "conv2", "conv3", "fc1", "output")}
    # The update differs from a plain step: the gradient is taken at the perturbed point.
    assert namespace["check_perturbation_matters"]() > 1e-4


def test_without_perturbation_and_attack_it_is_a_plain_keras_step():
    rng = np.random.default_rng(1)
    x = rng.random((16, 8, 8, 1), dtype="float32")
    y = rng.integers(0, 10, 16).astype("int32")
    weights = []
    for wrap in (False, True):
        keras.utils.set_random_seed(0)
        model = architectures.build("mlp", input_shape=(8, 8, 1))
        if wrap:
            model = awp.awp_model(model, gamma=0.0, epsilon=0.0)
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
        logs = model.train_on_batch(x, y, return_dict=True)
        weights.append([keras.ops.convert_to_numpy(w) for w in model.trainable_weights])
        assert set(logs) == {"loss", "accuracy"}
    for plain, wrapped in zip(*weights):
        np.testing.assert_allclose(wrapped, plain, atol=1e-6)


def test_settings_survive_config_save_and_drift_evaluation(tmp_path):
    from bayesft_keras import LogNormalDrift
    from bayesft_keras import evaluate_drift

    model = awp.awp_model(
        architectures.build("mlp", input_shape=(8, 8, 1), noise=LogNormalDrift(0.5)),
        gamma=0.02, epsilon=0.1, step_size=0.01, steps=2, input_range=None, seed=5,
    )
    model.save(tmp_path / "awp.keras")
    loaded = keras.models.load_model(tmp_path / "awp.keras")
    assert type(loaded) is awp.AWPModel
    settings = ("gamma", "epsilon", "step_size", "steps", "input_range", "seed")
    assert {k: getattr(loaded, k) for k in settings} == {k: getattr(model, k) for k in settings}
    x = np.random.default_rng(0).random((20, 8, 8, 1), dtype="float32")
    report = evaluate_drift(loaded, (x, np.zeros(20, "int32")), sigmas=[0.0, 0.5], chips=2)
    assert report.mean().shape == (2,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gamma=-0.01), "gamma.*>= 0.*gamma=-0.01"),
        (dict(steps=1.5), "steps.*int >= 0.*steps=1.5"),
        (dict(input_range=(1.0, 0.0)), "input_range.*low < high.*\\(1.0, 0.0\\)"),
        (dict(seed="x"), "seed.*int.*seed='x'"),
    ],
)
def test_bad_settings_quote_the_received_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        awp.awp_model(architectures.build("mlp", input_shape=(8, 8, 1)), **kwargs)


def test_unsupported_backend_and_model_raise_clear_errors():
    with pytest.raises(ValueError, match="tensorflow, jax, torch backends.*'numpy'"):
        awp._value_and_grad(lambda x: (x, ()), 0, backend="numpy")
    with pytest.raises(ValueError, match="functional or Sequential"):
        awp.awp_model("not a model")


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.slow
def test_other_backends(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    code = STEP_CHECK + textwrap.dedent(
        """
        ratios, moved, error = check_step()
        assert check_perturbation_matters() > 1e-4
        check_ftna()
        print("ok", keras.backend.backend(), max(abs(r - awp.GAMMA) for r in ratios.values()), error)
        """
    )
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ok {backend}" in result.stdout


@pytest.mark.slow
def test_ftna_and_awp_run_through_tune(tmp_path):
    from bayesft_keras.tuning.config import TuneConfig
    from bayesft_keras.tuning.search import run_search

    config = TuneConfig(
        arch="lenet5", dataset="digits", input_shape=(28, 28, 1), max_train_examples=400,
        sigma=0.8, chips=2, trials=1, initial_points=1, baselines=("ftna", "awp"), epochs=1,
        batch_size=64, report_sigmas=(0.0, 1.5, 3), report_chips=2,
    )
    result = run_search(config, tmp_path / "run", verbose=0)
    assert list(result.methods) == ["bayesft", "ftna", "awp"]
    for name in ("ftna", "awp"):
        method = result.methods[name]
        assert method.trials == 1
        assert set(method.hyperparameters.values()) == {0.0}  # no dropout, as the authors' baselines
        assert (tmp_path / "run" / "reports" / f"{name}.json").exists()
    # FTNA is scored by decoding its codewords (an arg-max of the 7 bits is not a class).
    assert json.loads((tmp_path / "run" / "reports" / "ftna.json").read_text())["metric"] == "accuracy"
    from bayesft_keras import data
    from bayesft_keras import noise_off
    from bayesft_keras.baselines import ftna

    (saved,) = (tmp_path / "run" / "kt" / "ftna").glob("*/model.keras")
    model = keras.models.load_model(saved)
    ds = data.load("digits", input_shape=(28, 28, 1))
    with noise_off(model):
        outputs = model.predict(ds.x_test, verbose=0)
    decoded = keras.ops.convert_to_numpy(ftna.decode(outputs, ftna.make_codebook()))
    assert result.methods["ftna"].report.clean == pytest.approx(np.mean(decoded == ds.y_test), abs=1e-6)
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "FTNA (error-correcting output codes)" in summary
    assert "AWP (adversarial weight perturbation)" in summary
    assert (tmp_path / "run" / "reports" / "comparison.png").exists()
    trials = (tmp_path / "run" / "trials.csv").read_text()
    assert "\nftna," in trials and "\nawp," in trials


def test_tune_config_accepts_the_baselines_for_classification_only():
    from bayesft_keras.tuning.config import TuneConfig

    assert TuneConfig(baselines=("ftna", "awp")).baselines == ("ftna", "awp")
    with pytest.raises(ValueError, match="without \\['awp'\\] for task='detection'.*Received: baselines"):
        TuneConfig(task="detection", baselines=("no_dropout", "awp"))
