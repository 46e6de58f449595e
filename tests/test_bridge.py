"""The tf_keras / tfmot bridge, checked against the Keras 3 core.

Everything Keras 2 runs in subprocesses (tfmot must never be imported into the
core's process): one Keras 2 process does all the bridge work of this module
(QAT training, quantizer outputs, drift reports) and saves arrays and reports;
the tests compare them with the core computed here, in the Keras 3 process.
"""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from bayesft_keras import data
from bayesft_keras.device import noise
from bayesft_keras.device import quantization
from bayesft_keras.bridge import is_legacy_model_path
from bayesft_keras.bridge import legacy_environment
from bayesft_keras.cli import app
from bayesft_keras.evaluation import DriftReport
from bayesft_keras.evaluation import chip_seed_grid
from bayesft_keras.evaluation import evaluate_drift

SIGMAS = [0.0, 0.5, 1.0]
CHIPS = 4
SEED = 7
QAT_BITS = 3
EVAL_BITS = 4
# A composed device (two draws per tensor) swept in its stuck-at-zero rate.
COMPOSE = noise.Compose([noise.LogNormalDrift(0.3), noise.StuckAtFaults()])
P_LOWS = [0.0, 0.05, 0.2]
RANDOM_BITS = (2, 3, 4, 5, 8, 16)
# (shape, channel axes): Dense, Conv1D, Conv2D kernels, a depthwise kernel, a bias.
RANDOM_SHAPES = (
    ((7, 5), (-1,)),
    ((3, 4, 6), (-1,)),
    ((3, 3, 4, 6), (-1,)),
    ((3, 3, 4, 2), (-2, -1)),
    ((9,), None),
)

# The Keras 2 side. The model: Conv2D -> DepthwiseConv2D -> Dense, one of each
# kernel layout; the same architecture is rebuilt in Keras 3 by `_keras3_model`.
_LEGACY_SCRIPT = r"""
import json, os, sys
out = sys.argv[1]
import numpy as np
import tensorflow as tf
import tf_keras
from bayesft_keras import data
from bayesft_keras.bridge import legacy_drift, runner, tfmot_qat

SIGMAS, CHIPS, SEED, QAT_BITS, EVAL_BITS = {sigmas}, {chips}, {seed}, {qat_bits}, {eval_bits}
P_LOWS = {p_lows}
RANDOM_BITS, RANDOM_SHAPES = {random_bits}, {random_shapes}
result = {{"tf_keras": tf.keras.__name__}}
tf_keras.utils.set_random_seed(0)
ds = data.load("digits")

def build():
    return tf_keras.Sequential([
        tf_keras.Input(ds.input_shape),
        tf_keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
        tf_keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu", name="depthwise"),
        tf_keras.layers.Flatten(name="flatten"),
        tf_keras.layers.Dense(10, activation="softmax", name="dense"),
    ])

# A float model, trained and saved.
model = build()
model.compile(tf_keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(ds.x_train, ds.y_train, epochs=8, batch_size=64, verbose=0)
model.save(os.path.join(out, "float.h5"))
model.save(os.path.join(out, "float_savedmodel"), save_format="tf")
np.savez(os.path.join(out, "float_weights.npz"), *model.get_weights())
float_weights = [w.copy() for w in model.get_weights()]

# Quantization-aware training through tfmot, from a fresh model.
fresh = build()
fresh_weights = [w.copy() for w in fresh.get_weights()]
qat = tfmot_qat.quantize_model(fresh, bits=QAT_BITS)
result["wrapped"] = [
    [l.layer.name, type(l.quantize_config).__name__, l.quantize_config.bits]
    for l in qat.layers if hasattr(l, "quantize_config")
]
result["layers"] = [type(l).__name__ for l in qat.layers]
qat.compile(tf_keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
result["qat_before"] = qat.evaluate(ds.x_test, ds.y_test, verbose=0)
history = qat.fit(ds.x_train, ds.y_train, epochs=6, batch_size=64, verbose=0)
result["qat_after"] = qat.evaluate(ds.x_test, ds.y_test, verbose=0)
result["qat_train_loss"] = history.history["loss"]
result["caller_model_untouched_by_qat"] = all(
    np.array_equal(a, b) for a, b in zip(fresh_weights, fresh.get_weights()))

# The QAT model's own quantized weights (through its tfmot quantizers).
raw, quantized, axes = [], [], []
for layer in qat.layers:
    for weight, quantizer, variables in getattr(layer, "_weight_vars", []):
        raw.append(weight.numpy())
        quantized.append(quantizer(weight, False, variables).numpy())
        axes.append([list(quantizer.channel_axes), quantizer.per_channel])
np.savez(os.path.join(out, "qat_raw.npz"), *raw)
np.savez(os.path.join(out, "qat_quantized.npz"), *quantized)
result["qat_quantizer_axes"] = axes
# The QAT model computes with exactly those weights.
plain = build()
plain.set_weights(quantized)
result["qat_vs_plain_quantized_max_diff"] = float(np.abs(
    qat.predict(ds.x_test, verbose=0) - plain.predict(ds.x_test, verbose=0)).max())
qat.save(os.path.join(out, "qat.h5"))

# The bridge's quantizer on random tensors, and its straight-through gradient.
rng = np.random.default_rng(0)
inputs, outputs, grad_errors = [], [], []
for bits in RANDOM_BITS:
    for shape, channel_axes in RANDOM_SHAPES:
        for per_channel in (True, False):
            w = rng.standard_t(3, size=shape).astype("float32")
            w[..., 0] = 0.0  # an all-zero channel
            quantizer = tfmot_qat.DeviceWeightQuantizer(
                bits, channel_axes or (-1,), per_channel and channel_axes is not None)
            variable = tf.Variable(w)
            upstream = rng.normal(size=shape).astype("float32")
            with tf.GradientTape() as tape:
                q = quantizer(variable, True, {{}})
                loss = tf.reduce_sum(q * upstream)
            grad_errors.append(float(np.abs(tape.gradient(loss, variable).numpy() - upstream).max()))
            inputs.append(w)
            outputs.append(q.numpy())
np.savez(os.path.join(out, "random_in.npz"), *inputs)
np.savez(os.path.join(out, "random_out.npz"), *outputs)
result["ste_max_error"] = max(grad_errors)

# Drift reports: a model object, a QAT model file, and the runner on a SavedModel.
legacy_drift.evaluate_drift_legacy(
    model, ds.x_test, ds.y_test, sigmas=SIGMAS, chips=CHIPS, seed=SEED, bits=EVAL_BITS,
    progress=False, dataset="digits/test",
).to_json(os.path.join(out, "float_report.json"))
result["caller_model_untouched_by_eval"] = all(
    np.array_equal(a, b) for a, b in zip(float_weights, model.get_weights()))
legacy_drift.evaluate_drift_legacy(
    os.path.join(out, "qat.h5"), ds.x_test, ds.y_test, sigmas=SIGMAS, chips=CHIPS, seed=SEED,
    progress=False,
).to_json(os.path.join(out, "qat_report.json"))
runner.main([
    "evaluate", os.path.join(out, "float_savedmodel"), "--noise", {compose_json!r},
    "--param", "1.p_low", "--values", ",".join(map(str, P_LOWS)),
    "--chips", str(CHIPS), "--seed", str(SEED), "--bits", str(EVAL_BITS),
    "--out", os.path.join(out, "runner"), "--progress", "none",
])
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump(result, f)
"""


def _run(args, env, timeout=300):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """Runs the Keras 2 side once; returns its output folder and result dict."""
    out = tmp_path_factory.mktemp("legacy")
    script = _LEGACY_SCRIPT.format(
        sigmas=SIGMAS,
        chips=CHIPS,
        seed=SEED,
        qat_bits=QAT_BITS,
        eval_bits=EVAL_BITS,
        random_bits=RANDOM_BITS,
        random_shapes=RANDOM_SHAPES,
        p_lows=P_LOWS,
        compose_json=json.dumps(noise.serialize(COMPOSE)),
    )
    proc = _run([sys.executable, "-c", script, str(out)], legacy_environment())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    with open(out / "result.json") as f:
        return out, json.load(f)


def _arrays(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _keras3_model(weights):
    ds = data.load("digits")
    model = keras.Sequential(
        [
            keras.Input(ds.input_shape),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.set_weights(weights)
    return model, ds


@pytest.mark.slow
def test_legacy_process_uses_tf_keras(legacy):
    _, result = legacy
    assert result["tf_keras"].startswith("tf_keras")


@pytest.mark.slow
def test_quantized_model_wraps_device_layers_and_trains(legacy):
    _, result = legacy
    assert result["layers"] == ["QuantizeWrapperV2", "QuantizeWrapperV2", "Flatten", "QuantizeWrapperV2"]
    assert result["wrapped"] == [
        ["conv", "DeviceQuantizeConfig", QAT_BITS],
        ["depthwise", "DeviceQuantizeConfig", QAT_BITS],
        ["dense", "DeviceQuantizeConfig", QAT_BITS],
    ]
    loss_before, acc_before = result["qat_before"]
    loss_after, acc_after = result["qat_after"]
    losses = result["qat_train_loss"]
    # 360 test digits: the standard error of an accuracy is at most 0.026.
    assert acc_before < 0.3  # untrained: about chance (0.1)
    assert acc_after > 0.7, result
    assert loss_after < 0.5 * loss_before
    assert losses[-1] < 0.5 * losses[0]
    assert result["caller_model_untouched_by_qat"]


@pytest.mark.slow
def test_qat_weights_equal_core_quantizer(legacy):
    out, result = legacy
    raw = _arrays(out / "qat_raw.npz")
    bridge = _arrays(out / "qat_quantized.npz")
    # kernel, bias per layer: Conv2D, DepthwiseConv2D, Dense.
    assert result["qat_quantizer_axes"] == [
        [[-1], True], [[-1], False], [[-2, -1], True], [[-1], False], [[-1], True], [[-1], False]
    ]
    channel_axes = [(-1,), None, (-2, -1), None, (-1,), None]
    for w, q, axes in zip(raw, bridge, channel_axes):
        if axes is None:
            core = quantization.quantize_weight(w, QAT_BITS, per_channel=False)
        else:
            core = quantization.quantize_weight(w, QAT_BITS, axes, per_channel=True)
        core = keras.ops.convert_to_numpy(core)
        np.testing.assert_allclose(q, core, rtol=0, atol=1e-6 * np.abs(w).max())
        # On the 3-bit grid: at most 7 levels per range (output channel, or bias).
        channels = 1 if axes is None else int(np.prod([q.shape[a] for a in axes]))
        per_range = q.reshape(-1, channels)
        assert max(len(np.unique(per_range[:, c])) for c in range(channels)) <= 2**QAT_BITS - 1
    # The QAT forward pass computes with exactly these weights.
    assert result["qat_vs_plain_quantized_max_diff"] < 1e-5


@pytest.mark.slow
def test_bridge_quantizer_equals_core_on_random_tensors(legacy):
    out, result = legacy
    inputs = _arrays(out / "random_in.npz")
    outputs = _arrays(out / "random_out.npz")
    cases = [
        (bits, axes, per_channel)
        for bits in RANDOM_BITS
        for _, axes in RANDOM_SHAPES
        for per_channel in (True, False)
    ]
    assert len(cases) == len(inputs) == len(outputs) == 60
    for (bits, axes, per_channel), w, q in zip(cases, inputs, outputs):
        if axes is None or not per_channel:
            core = quantization.quantize_weight(w, bits, per_channel=False)
        else:
            core = quantization.quantize_weight(w, bits, axes, per_channel=True)
        core = keras.ops.convert_to_numpy(core)
        np.testing.assert_allclose(
            q, core, rtol=0, atol=1e-6 * np.abs(w).max(), err_msg=str((bits, w.shape, axes, per_channel))
        )
        assert np.all(q[..., 0] == 0.0)  # the all-zero channel stays zero
    # Straight-through: the gradient is the upstream gradient, unchanged.
    assert result["ste_max_error"] == 0.0


def _check_common_format(report, bits, num_examples):
    assert report.param == "sigma"
    assert report.metric == "accuracy"
    assert report.bits == bits
    assert report.noise["class_name"] == "LogNormalDrift"
    assert report.num_examples == num_examples
    np.testing.assert_array_equal(report.values, SIGMAS)
    assert report.chip_metrics.shape == (len(SIGMAS), CHIPS)
    np.testing.assert_array_equal(report.chip_seeds, chip_seed_grid(SEED, len(SIGMAS), CHIPS))
    # sigma = 0 is the clean device; drift at sigma = 1 costs accuracy.
    np.testing.assert_allclose(report.chip_metrics[0], report.clean)
    assert report.mean()[-1] < report.clean - 0.1


@pytest.mark.slow
def test_drift_report_of_tf_keras_model_matches_core(legacy, tmp_path):
    out, result = legacy
    report = DriftReport.from_json(out / "float_report.json")
    model, ds = _keras3_model(_arrays(out / "float_weights.npz"))
    _check_common_format(report, EVAL_BITS, len(ds.x_test))
    assert report.dataset == "digits/test"
    assert result["caller_model_untouched_by_eval"]
    core = evaluate_drift(
        model, (ds.x_test, ds.y_test), sigmas=SIGMAS, chips=CHIPS, seed=SEED, bits=EVAL_BITS, progress=False
    )
    # Same device, same chips: the same accuracies, up to one example flipped
    # by float rounding (1 / 360).
    one_example = 1.0 / len(ds.x_test)
    np.testing.assert_allclose(report.chip_metrics, core.chip_metrics, atol=one_example + 1e-12, rtol=0)
    assert abs(report.clean - core.clean) <= one_example + 1e-12
    assert report.to_dict().keys() == core.to_dict().keys()
    # The common files: CSV and PNG from the same report class.
    assert report.to_csv(tmp_path / "r.csv").splitlines()[0] == core.to_csv().splitlines()[0]
    report.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_drift_report_of_qat_model_file_uses_its_precision(legacy):
    out, _ = legacy
    report = DriftReport.from_json(out / "qat_report.json")
    # The QAT model's float weights on the 3-bit device of its QuantizeConfig.
    model, ds = _keras3_model(_arrays(out / "qat_raw.npz"))
    _check_common_format(report, QAT_BITS, len(ds.x_test))
    assert report.model_name == "qat"
    core = evaluate_drift(
        model, (ds.x_test, ds.y_test), sigmas=SIGMAS, chips=CHIPS, seed=SEED, bits=QAT_BITS, progress=False
    )
    one_example = 1.0 / len(ds.x_test)
    np.testing.assert_allclose(report.chip_metrics, core.chip_metrics, atol=one_example + 1e-12, rtol=0)


@pytest.mark.slow
def test_runner_sweeps_any_device_noise_of_a_saved_model_as_the_core(legacy):
    out, _ = legacy
    folder = out / "runner"
    assert sorted(p.name for p in folder.iterdir()) == ["report.csv", "report.json", "report.png"]
    report = DriftReport.from_json(folder / "report.json")
    assert report.model_name == "float_savedmodel"
    assert report.param == "1.p_low" and report.noise == noise.serialize(COMPOSE)
    np.testing.assert_array_equal(report.values, P_LOWS)
    assert len((folder / "report.csv").read_text().splitlines()) == 1 + len(P_LOWS)
    model, ds = _keras3_model(_arrays(out / "float_weights.npz"))
    core = evaluate_drift(
        model, (ds.x_test, ds.y_test), noise=COMPOSE, param="1.p_low", values=P_LOWS, chips=CHIPS,
        seed=SEED, bits=EVAL_BITS, progress=False,
    )
    one_example = 1.0 / len(ds.x_test)
    np.testing.assert_allclose(report.chip_metrics, core.chip_metrics, atol=one_example + 1e-12, rtol=0)
    # Stuck cells cost accuracy on top of the drift.
    assert report.mean()[-1] < report.mean()[0] - 0.1


_CORE_SCRIPT = r"""
import importlib, json, pkgutil, sys
import numpy as np
import bayesft_keras
import bayesft_keras.bridge
keras2_only = {"bayesft_keras.bridge.tfmot_qat", "bayesft_keras.bridge.legacy_drift",
               "bayesft_keras.bridge.legacy_keras"}
imported, refused = [], []
for info in pkgutil.walk_packages(bayesft_keras.__path__, "bayesft_keras."):
    if any(part.startswith("_") for part in info.name.split(".")[1:]):
        continue  # private modules and __main__
    if info.name in keras2_only:
        try:
            importlib.import_module(info.name)
        except ImportError:
            refused.append(info.name)
        continue
    importlib.import_module(info.name)
    imported.append(info.name)
# Lazy names of the bridge refuse too, without importing tfmot.
try:
    bayesft_keras.bridge.quantize_model
except ImportError:
    refused.append("bayesft_keras.bridge.quantize_model")

import keras
import tensorflow as tf
from bayesft_keras.evaluation import evaluate_drift
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
y = np.arange(32) % 3
core = evaluate_drift(model, (x, y), sigmas=[0.0, 1.0], chips=2, progress=False)
print(json.dumps({
    "imported": imported,
    "refused": refused,
    "tfmot": "tensorflow_model_optimization" in sys.modules,
    "tf_keras": "tf_keras" in sys.modules,
    "tf.keras": tf.keras.__version__,
    "core_shape": list(core.chip_metrics.shape),
}))
"""


def _core_environment():
    env = legacy_environment()
    del env["TF_USE_LEGACY_KERAS"]
    env.pop("KERAS_BACKEND")
    return env


@pytest.mark.slow
def test_core_process_never_imports_tfmot():
    proc = _run([sys.executable, "-c", _CORE_SCRIPT], _core_environment())
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tfmot"] is False
    assert result["tf_keras"] is False
    assert result["tf.keras"].startswith("3.")
    assert {"bayesft_keras.evaluation", "bayesft_keras.bridge.launcher", "bayesft_keras.bridge.runner", "bayesft_keras.cli"} <= set(result["imported"])
    assert len(result["imported"]) >= 20
    assert sorted(result["refused"]) == [
        "bayesft_keras.bridge.legacy_drift",
        "bayesft_keras.bridge.legacy_keras",
        "bayesft_keras.bridge.quantize_model",
        "bayesft_keras.bridge.tfmot_qat",
    ]
    assert result["core_shape"] == [2, 2]


def test_legacy_model_paths(tmp_path):
    saved_model = tmp_path / "exported"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    assert is_legacy_model_path(saved_model)
    assert is_legacy_model_path(tmp_path / "model.h5") and is_legacy_model_path("model.HDF5")
    assert not is_legacy_model_path(tmp_path / "folder")
    assert not is_legacy_model_path("model.keras")


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_cli_evaluate_runs_tf_keras_files_through_the_bridge(legacy, tmp_path):
    out, _ = legacy
    result = _invoke(
        "evaluate", out / "float.h5", "--sigmas", ",".join(map(str, SIGMAS)), "--chips", CHIPS,
        "--seed", SEED, "--bits", EVAL_BITS, "--out", tmp_path / "report",
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.csv", "report.json", "report.png"]
    report = DriftReport.from_json(tmp_path / "report" / "report.json")
    assert report.model_name == "float" and report.dataset == "digits/test"
    # The same model (saved as h5), the same chips: the bridge's direct report.
    direct = DriftReport.from_json(out / "float_report.json")
    np.testing.assert_array_equal(report.chip_metrics, direct.chip_metrics)
    assert report.clean == direct.clean
    # The bridge ran in its own process: tfmot never entered this one.
    assert "tensorflow_model_optimization" not in sys.modules


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("broken.h5", [], r"^Error: Cannot load .*broken\.h5 as a tf_keras model"),
        ("float.h5", ["--chips", "0"], r"^Error: `chips` must be an integer >= 1"),
    ],
)
@pytest.mark.slow
def test_cli_evaluate_tf_keras_errors_are_one_line(legacy, tmp_path, name, args, message):
    out, _ = legacy
    (out / "broken.h5").write_text("not a model")
    result = _invoke("evaluate", out / name, "--chips", 1, *args, "--out", tmp_path / "report")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(message, lines[0]), lines[0]
