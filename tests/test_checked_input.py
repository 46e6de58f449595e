"""Issue 14, checked data and arguments: bad input is refused up front, in one line that names it.

- non-finite noise parameters (σ = inf, NaN strengths, infinite times and constants);
- bits outside [2, 16] (0 is not "none"); a yield threshold outside [0, 1];
- non-finite pixels, labels that are not classes of the model, a model of other classes than the data;
- `convert()` on layers with weights it cannot put on the device;
- unwritable output paths (`tune --dir`, `evaluate --out`, `plot -o`, `study --out`), before any work;
- every CLI seed flag with the message of `utils.checks.seed`;
- RUN/config.json written only once every setting is checked; a larger `--trials` continues a search.
"""

import json
import math
import os
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import bayesft_keras as bk
from bayesft_keras.cli import app
from bayesft_keras.data import Dataset
from bayesft_keras.device import quantization
from bayesft_keras.evaluation import validation
from bayesft_keras.tuning import artifacts
from bayesft_keras.tuning.config import TuneConfig
from bayesft_keras.utils.files import check_writable

INF, NAN = math.inf, math.nan


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result, pattern):
    """The command failed with exit 2 and printed exactly one line, matching ``pattern``, on stderr."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# -- non-finite noise parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, argument, value",
    [
        (lambda: bk.LogNormalDrift(INF), "sigma", "inf"),
        (lambda: bk.LogNormalDrift(NAN), "sigma", "nan"),
        (lambda: bk.LogNormalDrift(0.5).with_params(sigma=INF), "sigma", "inf"),
        (lambda: bk.Compose([bk.LogNormalDrift(0.5)]).with_params(**{"0.sigma": INF}), "sigma", "inf"),
        (lambda: bk.ProgrammingNoise(INF), "std", "inf"),
        (lambda: bk.StuckAtFaults(NAN), "p_low", "nan"),
        (lambda: bk.StuckAtFaults(0.0, INF), "p_high", "inf"),
        (lambda: bk.OnConductances(bk.LogNormalDrift(0.1)).with_params(sigma=INF), "sigma", "inf"),
        (lambda: bk.PowerLawDrift(nu=INF), "nu", "inf"),
        (lambda: bk.PowerLawDrift(nu_std=NAN), "nu_std", "nan"),
        (lambda: bk.PowerLawDrift(t=INF), "t", "inf"),
        (lambda: bk.PowerLawDrift(t0=INF), "t0", "inf"),
        (lambda: bk.PolynomialProgrammingNoise(scale=INF), "scale", "inf"),
        (lambda: bk.PolynomialProgrammingNoise(coeffs=(0.1, INF)), "coeffs", "[0.1, inf]"),
        (lambda: bk.PolynomialProgrammingNoise(g_ref=INF), "g_ref", "inf"),
        (lambda: bk.PCMLikeNoise(prog_noise_scale=INF), "prog_noise_scale", "inf"),
        (lambda: bk.PCMLikeNoise(read_noise_scale=NAN), "read_noise_scale", "nan"),
        (lambda: bk.PCMLikeNoise(t=INF), "t", "inf"),
        (lambda: bk.PCMLikeNoise(t0=INF), "t0", "inf"),
        (lambda: bk.PCMLikeNoise(t_read=NAN), "t_read", "nan"),
        (lambda: bk.PCMLikeNoise(prog_coeff=(NAN, 1.0)), "prog_coeff", "[nan, 1.0]"),
        (lambda: bk.PCMLikeNoise(prog_coeff_g_max_reference=INF), "prog_coeff_g_max_reference", "inf"),
        (lambda: bk.ReRamCMONoise(drift_scale=INF), "drift_scale", "inf"),
        (lambda: bk.ReRamCMONoise(decay_mean=-INF), "decay_mean", "-inf"),
        (lambda: bk.ReRamCMONoise(decay_std=(INF, 0.4)), "decay_std", "[inf, 0.4]"),
        (lambda: bk.ReRamCMONoise(read_k=NAN), "read_k", "nan"),
        (lambda: bk.ReRamCMONoise(prog_coeff=(0.1, INF)), "prog_coeff", "[0.1, inf]"),
        (lambda: bk.ReadNoise(INF), "std", "inf"),
        (lambda: bk.DifferentialPair(g_max=INF), "g_max", "inf"),
        (lambda: bk.SingleDevice(g_min=NAN), "g_min", "nan"),
        (lambda: bk.Periphery(out_noise=INF), "out_noise", "inf"),
        (lambda: bk.Periphery(out_bound=INF), "out_bound", "inf"),
        (lambda: bk.Periphery(out_bound=NAN), "out_bound", "nan"),
    ],
)
def test_non_finite_noise_parameters_are_refused_naming_the_argument_and_value(make, argument, value):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert f"`{argument}`" in message and f"{argument}={value}" in message, message
    assert "finite" in message, message


def test_finite_parameters_are_kept_as_they_were():
    assert bk.LogNormalDrift(1.5).sigma == 1.5
    assert bk.PowerLawDrift(nu=0.05, t=1e9).t == 1e9
    assert bk.ReRamCMONoise(decay_mean=-0.1, read_k=0.03).params() == [1.0, 1.0, 1.0, 0.0]
    assert bk.Periphery(out_bound=12).out_bound == 12.0 and bk.Periphery().out_bound is None


def test_a_sweep_or_a_chip_to_a_non_finite_value_is_refused(trained, digits):
    with pytest.raises(ValueError, match=r"finite.*Received: values=\[0\.5, inf\]"):
        bk.evaluate_drift(trained, digits, sigmas=[0.5, INF], chips=1, progress=False)
    device = bk.convert(trained, noise=bk.LogNormalDrift(0.5))
    with pytest.raises(ValueError, match=r"`sigma` of LogNormalDrift must be a finite number.*sigma=inf"):
        bk.set_noise_params(device, sigma=INF)


def test_tune_sigma_inf_fails_before_training_in_one_line(tmp_path):
    run = tmp_path / "run"
    line = _one_line_error(_invoke("tune", "--sigma", "inf", "--dir", run), r"`sigma` must be a finite number")
    assert "sigma=inf" in line
    assert not run.exists()  # nothing trained, nothing written


# -- bits -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 1, 17, -4])
def test_bits_outside_the_range_are_refused_with_the_range(bits, trained):
    allowed = f"[{quantization.MIN_BITS}, {quantization.MAX_BITS}]"
    for make in (
        lambda: TuneConfig(bits=bits),
        lambda: TuneConfig().replace(bits=bits),
        lambda: bk.convert(trained, bits=bits),
        lambda: bk.ReRAMDense(4, bits=bits),
    ):
        with pytest.raises(ValueError) as info:
            make()
        assert allowed in str(info.value) and f"bits={bits}" in str(info.value), str(info.value)


def test_full_precision_is_written_none():
    assert TuneConfig().replace(bits="none").bits is None
    assert TuneConfig().replace(bits=4).bits == 4


def test_tune_bits_0_is_one_line_naming_the_range(tmp_path):
    line = _one_line_error(_invoke("tune", "--bits", "0", "--dir", tmp_path / "run"), r"`bits`")
    assert "[2, 16]" in line and "bits=0" in line
    assert not (tmp_path / "run").exists()


def test_evaluate_bits_0_is_one_line_naming_the_range(files, tmp_path):
    line = _one_line_error(
        _invoke("evaluate", files / "plain.keras", "--bits", "0", "--out", tmp_path / "out"), r"`bits`"
    )
    assert "[2, 16]" in line and "bits=0" in line


# -- yield threshold --------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [2, -0.1, 1.0001, INF, NAN])
def test_a_threshold_outside_0_1_is_refused(threshold, trained, digits):
    with pytest.raises(ValueError) as info:
        validation.check_threshold(threshold)
    assert "`threshold` must be in [0, 1]" in str(info.value)
    assert f"threshold={threshold!r}" in str(info.value)
    with pytest.raises(ValueError, match=r"`threshold` must be in \[0, 1\]"):
        bk.evaluate_drift(trained, digits, sigmas=[0.0], chips=1, threshold=threshold, progress=False)


def test_thresholds_in_0_1_are_kept():
    assert [validation.check_threshold(t) for t in (0, 0.5, 1)] == [0.0, 0.5, 1.0]
    assert validation.check_threshold(None) is None


def test_evaluate_threshold_2_is_one_line(files, tmp_path):
    line = _one_line_error(
        _invoke("evaluate", files / "plain.keras", "--threshold", "2", "--out", tmp_path / "out"),
        r"`threshold` must be in \[0, 1\]",
    )
    assert "threshold=2.0" in line
    assert not (tmp_path / "out").exists()


# -- data: pixels, labels, classes ------------------------------------------------------------------


def _with_nan(x, count=1, value=NAN):
    x = np.array(x, dtype="float32", copy=True)
    x.reshape(len(x), -1)[3, :count] = value
    return x


@pytest.mark.parametrize("x_of", [
    lambda x: np.full_like(x, NAN),  # all-NaN images once scored 0.103
    lambda x: _with_nan(x),
    lambda x: _with_nan(x, 5, INF),
    lambda x: _with_nan(x, 1, -INF),
])
def test_non_finite_pixels_are_refused(x_of, trained, digits):
    x = x_of(digits.x_test)
    with pytest.raises(ValueError) as info:
        bk.evaluate_drift(trained, (x, digits.y_test), sigmas=[0.0], chips=1, progress=False)
    message = str(info.value)
    assert "`x` of `data` must hold finite numbers" in message, message
    assert re.search(rf"NaN or infinite value\(s\) in \d+ of {len(x)} examples, the first in example [03]\b", message)


def test_the_message_counts_the_bad_values_and_names_the_first_example(trained, digits):
    x = _with_nan(digits.x_test, 5)
    with pytest.raises(ValueError, match=rf"Received: 5 NaN or infinite value\(s\) in 1 of {len(x)} examples, the first in example 3$"):
        validation.check_data(trained, x, digits.y_test)


@pytest.mark.parametrize("bad, shown", [(12, "12.0"), (-1, "-1.0"), (0.5, "0.5"), (NAN, "nan"), (10, "10.0")])
def test_labels_that_are_not_classes_of_the_model_are_refused(bad, shown, trained, digits):
    y = digits.y_test.astype("float64")
    y[7] = bad
    with pytest.raises(ValueError) as info:
        bk.evaluate_drift(trained, (digits.x_test, y), sigmas=[0.0], chips=1, progress=False)
    message = str(info.value)
    assert "`data` labels must be integers in [0, 10)" in message, message
    assert "the 10 output classes of model 'digits_cnn'" in message
    assert f"y[7]={shown}" in message


def test_integral_float_labels_and_one_hot_labels_are_accepted(trained, digits):
    report = bk.evaluate_drift(
        trained, (digits.x_test, digits.y_test.astype("float32")), sigmas=[0.0], chips=1, progress=False
    )
    one_hot = keras.utils.to_categorical(digits.y_test, 10)
    assert bk.evaluate_drift(trained, (digits.x_test, one_hot), sigmas=[0.0], chips=1, progress=False).clean == report.clean
    one_hot[0, 0] = 2.0
    with pytest.raises(ValueError, match=r"one-hot labels for model 'digits_cnn' must be finite numbers in \[0, 1\]"):
        bk.evaluate_drift(trained, (digits.x_test, one_hot), sigmas=[0.0], chips=1, progress=False)


def _classifier(classes, name):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(classes, activation="softmax")], name=name
    )


def test_a_model_of_other_classes_than_the_data_is_refused(digits):
    three = _classifier(3, "three")
    # A Dataset knows its classes: any mismatch is refused.
    with pytest.raises(ValueError, match=r"Model 'three' has 3 output classes, but the data has 10"):
        bk.evaluate_drift(three, digits, sigmas=[0.0], chips=1, progress=False)
    # Plain arrays: the labels 3..9 are no classes of a 3-class model.
    with pytest.raises(ValueError) as info:
        bk.evaluate_drift(three, (digits.x_test, digits.y_test), sigmas=[0.0], chips=1, progress=False)
    message = str(info.value)
    assert "integers in [0, 3) for the 3 output classes of model 'three'" in message
    assert "the labels go up to 9, so the data has at least 10 classes" in message
    # A single sigmoid output reads labels 0 and 1 only.
    sigmoid = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")], name="binary")
    with pytest.raises(ValueError, match=r"integers in \[0, 2\) for the single \(sigmoid\) output of model 'binary'"):
        bk.evaluate_drift(sigmoid, (digits.x_test, digits.y_test), sigmas=[0.0], chips=1, progress=False)
    binary = (digits.y_test % 2).astype("int32")
    assert bk.evaluate_drift(sigmoid, (digits.x_test, binary), sigmas=[0.0], chips=1, progress=False).chips == 1


def test_a_metric_with_its_own_labels_gets_no_class_check(digits):
    # FTNA's head: 7 code bits, labels 0..9 decoded by its own metric. Only accuracy reads labels as classes.
    codes = _classifier(7, "codes")

    def decoded(y_true, y_pred):
        return float(np.mean(np.argmax(y_pred, -1) == np.asarray(y_true) % 7))

    report = bk.evaluate_drift(codes, (digits.x_test, digits.y_test), sigmas=[0.0], chips=1, metric=decoded, progress=False)
    assert 0.0 <= report.clean <= 1.0
    # Non-finite pixels are refused whatever the metric.
    with pytest.raises(ValueError, match="must hold finite numbers"):
        bk.evaluate_drift(codes, (_with_nan(digits.x_test), digits.y_test), sigmas=[0.0], chips=1, metric=decoded, progress=False)


def test_evaluate_a_3_class_model_on_10_class_data_is_one_line(tmp_path):
    path = tmp_path / "three.keras"
    _classifier(3, "three").save(path)
    _one_line_error(
        _invoke("evaluate", path, "--chips", "1", "--sigmas", "0", "--out", tmp_path / "out"),
        r"Model 'three' has 3 output classes, but dataset 'digits' has 10",
    )
    assert not (tmp_path / "out").exists()


def _dataset(**changes):
    rng = np.random.default_rng(0)
    parts = {}
    for part, n in (("train", 20), ("val", 6), ("test", 6)):
        parts[f"x_{part}"] = rng.random((n, 4, 4, 1), dtype="float32")
        parts[f"y_{part}"] = (np.arange(n) % 3).astype("int32")
    parts.update(changes)
    return Dataset("toy", num_classes=3, **parts)


def test_a_dataset_is_checked_naming_itself_and_the_split():
    assert _dataset().check().name == "toy"
    x = _dataset().x_train.copy()
    x[4, 1, 2, 0] = NAN
    with pytest.raises(ValueError, match=r"`x_train` of dataset 'toy' must hold finite numbers. Received: 1 NaN or infinite value\(s\) in 1 of 20 examples, the first in example 4"):
        _dataset(x_train=x).check()
    for bad, shown in ((3, "3"), (-1, "-1"), (0.5, "0.5")):
        y = _dataset().y_val.astype("float32")
        y[2] = bad
        with pytest.raises(ValueError) as info:
            _dataset(y_val=y).check()
        message = str(info.value)
        assert "`y_val` of dataset 'toy' must hold integers in [0, 3)" in message and f"y_val[2]={shown}" in message
    with pytest.raises(ValueError, match=r"`y_test` of dataset 'toy' must hold one class index per image"):
        _dataset(y_test=np.zeros(5, "int32")).check()


def test_every_loaded_dataset_is_checked(monkeypatch):
    from bayesft_keras.data import registry

    from bayesft_keras import data as data_lib

    assert data_lib.load("synthetic", num_examples=100).num_classes == 10
    broken = _dataset(y_train=np.full(20, 7, "int32"))
    monkeypatch.setattr(registry, "_digits", lambda *args: broken)
    with pytest.raises(ValueError, match=r"`y_train` of dataset 'toy' must hold integers in \[0, 3\)"):
        registry.load("digits")


def test_tune_on_a_broken_dataset_is_one_line_and_claims_no_directory(monkeypatch, tmp_path):
    from bayesft_keras.data import registry

    x = _dataset().x_train.copy()
    x[0] = NAN
    monkeypatch.setattr(registry, "_digits", lambda *args: _dataset(x_train=x))
    run = tmp_path / "run"
    _one_line_error(_invoke("tune", "--preset", _preset(tmp_path), "--dir", run), r"`x_train` of dataset 'toy' must hold finite numbers")
    assert not (run / "config.json").exists()


# -- convert ----------------------------------------------------------------------------------------


def _mixed(unsupported):
    inputs = keras.Input((6, 4))
    x = unsupported(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.1)(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="mixed")


def test_convert_refuses_layers_with_weights_it_cannot_put_on_the_device():
    model = _mixed(lambda x: keras.layers.LSTM(5, return_sequences=True, name="memory")(x))
    with pytest.raises(ValueError) as info:
        bk.convert(model, noise=bk.LogNormalDrift(0.5))
    message = str(info.value)
    assert "'memory' (LSTM)" in message and "'mixed'" in message
    assert "skip_unsupported=True" in message and "Dense, Conv1D, Conv2D, DepthwiseConv2D" in message
    volume = keras.Sequential(
        [keras.Input((4, 4, 4, 1)), keras.layers.Conv3D(2, 3, name="volume"), keras.layers.Flatten(), keras.layers.Dense(2)],
        name="vol",
    )
    with pytest.raises(ValueError, match=r"'volume' \(Conv3D\)"):
        bk.convert(volume)


def test_convert_names_every_unsupported_layer_nested_ones_too():
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Embedding(10, 2, name="lookup"), keras.layers.Flatten()], name="inner")
    inputs = keras.Input((5,))
    x = inner(inputs)
    x = keras.layers.Dense(4)(x)
    x = keras.layers.Reshape((2, 2, 1))(x)
    x = keras.layers.Conv2DTranspose(1, 2, name="up")(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x), name="outer")
    with pytest.raises(ValueError) as info:
        bk.convert(model)
    assert "'lookup' (Embedding)" in str(info.value) and "'up' (Conv2DTranspose)" in str(info.value)


def test_skip_unsupported_keeps_them_with_a_warning():
    model = _mixed(lambda x: keras.layers.LSTM(5, return_sequences=True, name="memory")(x))
    with pytest.warns(UserWarning, match=r"keeps these layers of 'mixed' as they are \(digital, without drift\): 'memory' \(LSTM\)"):
        device = bk.convert(model, noise=bk.LogNormalDrift(0.5), skip_unsupported=True)
    kinds = [type(layer).__name__ for layer in device.layers]
    assert "LSTM" in kinds and "ReRAMDense" in kinds
    x = np.random.default_rng(0).random((2, 6, 4), dtype="float32")
    lstm = next(layer for layer in device.layers if type(layer).__name__ == "LSTM")
    np.testing.assert_array_equal(lstm(x), model.get_layer("memory")(x))  # kept as it was, weights too
    with pytest.raises(ValueError, match=r"`skip_unsupported` of convert\(\) must be a bool. Received: skip_unsupported='yes'"):
        bk.convert(model, skip_unsupported="yes")


def test_layers_without_weights_and_normalization_convert_silently(trained):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    x = keras.layers.PReLU()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = bk.convert(model, noise=bk.LogNormalDrift(0.5))
        bk.convert(trained, bits=4)
    assert not [w for w in caught if "convert()" in str(w.message)]
    assert [type(l).__name__ for l in bk.device_layers(device)] == ["ReRAMConv2D", "ReRAMDense"]


# -- writable outputs -------------------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path):
    """A folder this process cannot create files in (root ignores permissions: then /sys)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        check_writable("/sys", "probe")
    except ValueError:
        yield Path("/sys")
        return
    pytest.skip("no read-only folder for root here")


def test_check_writable(tmp_path, read_only):
    assert check_writable(tmp_path / "new" / "deeper", "--dir") == str(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # nothing is created ...
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".write-check")]  # ... nor left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^Cannot write to --dir .*file: it exists and is not a folder.$"):
        check_writable(tmp_path / "file", "--dir")
    with pytest.raises(ValueError, match=r"^Cannot write to --dir .*file/run: .*file is not a folder.$"):
        check_writable(tmp_path / "file" / "run", "--dir")
    with pytest.raises(ValueError, match=r"^Cannot write to --out .*: it is a folder, not a file.$"):
        check_writable(tmp_path, "--out", folder=False)
    for path, folder in ((read_only, True), (read_only / "run", True), (read_only / "x.png", False)):
        with pytest.raises(ValueError, match=r"^Cannot write to --o .*: (Permission denied|Read-only file system).* in "):
            check_writable(path, "--o", folder=folder)


def test_tune_dir_that_is_a_file_or_read_only_is_one_line(tmp_path, read_only):
    (tmp_path / "taken").write_text("a file")
    _one_line_error(_invoke("tune", "--dir", tmp_path / "taken"), r"Cannot write to --dir .*taken: it exists and is not a folder")
    _one_line_error(_invoke("tune", "--dir", read_only / "run"), r"Cannot write to --dir .*run: ")


def test_launch_dir_that_is_a_file_is_one_line_before_any_process(tmp_path):
    (tmp_path / "taken").write_text("a file")
    _one_line_error(_invoke("launch", "--workers", "1", "--dir", tmp_path / "taken"), r"Cannot write to --dir .*taken: it exists and is not a folder")
    assert not (tmp_path / "taken.logs").exists() and (tmp_path / "taken").read_text() == "a file"


def test_evaluate_out_read_only_fails_before_the_sweep(files, read_only):
    result = _invoke("evaluate", files / "plain.keras", "--out", read_only / "report")
    _one_line_error(result, r"Cannot write to --out .*report: ")
    assert "Evaluating" not in result.output  # no chip was scored


def test_plot_output_read_only_is_one_line(tmp_path, read_only):
    report = tmp_path / "report.json"
    report.write_text("{}")  # never read: the output is checked first
    _one_line_error(_invoke("plot", report, "-o", read_only / "drift.png"), r"Cannot write to --output .*drift.png: ")


def test_study_out_read_only_is_one_line(read_only):
    _one_line_error(_invoke("study", "--out", read_only / "study"), r"Cannot write to --out .*study: ")


# -- seeds ------------------------------------------------------------------------------------------


def test_every_cli_seed_flag_names_itself(files, tmp_path):
    line = _one_line_error(_invoke("tune", "--seed", "-1", "--dir", tmp_path / "run"), r"`seed` must be a non-negative int")
    assert line.endswith("Received: seed=-1")
    assert not (tmp_path / "run").exists()
    for flag, name in (("--seed", "seed"), ("--data-seed", "data_seed")):
        line = _one_line_error(
            _invoke("evaluate", files / "plain.keras", flag, "-1", "--out", tmp_path / "out"),
            rf"`{name}` must be a non-negative int",
        )
        assert line.endswith(f"Received: {name}=-1")


# -- config.json and --trials -----------------------------------------------------------------------


def test_config_is_compared_without_writing_and_only_more_trials_continue(tmp_path):
    run = tmp_path / "run"
    config = TuneConfig(trials=4)
    assert artifacts.check_same_config(config, run) is True and not run.exists()
    run.mkdir()
    artifacts.write_config(config, run)
    assert json.loads((run / "config.json").read_text())["trials"] == 4
    assert artifacts.check_same_config(config, run) is False
    assert artifacts.check_same_config(config.replace(trials=6), run) is True  # continues the search
    assert json.loads((run / "config.json").read_text())["trials"] == 4  # ... written only by write_config
    with pytest.raises(ValueError, match=r"other settings \(trials: 4 there, 2 now\).*only --trials may be raised"):
        artifacts.check_same_config(config.replace(trials=2), run)
    with pytest.raises(ValueError, match=r"other settings \(sigma: 0.8 there, 0.5 now, trials: 4 there, 6 now\)"):
        artifacts.check_same_config(config.replace(trials=6, sigma=0.5), run)
    (run / "config.json").write_text("")
    with pytest.raises(ValueError, match=r"config.json cannot be read"):
        artifacts.check_same_config(config, run)


TINY_PRESET = """
[model]
arch = "mlp"
width = 0.25
[objective]
sigma = 0.8
chips = 2
[search]
trials = 1
initial_points = 1
baselines = []
[training]
epochs = 1
batch_size = 64
trial_curve_points = 0
[report]
report_sigmas = [0.0, 1.0, 2]
report_chips = 2
"""


def _preset(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PRESET)
    return path


def _trials(run):
    import csv

    with open(run / "trials.csv") as f:
        return [row["trial"] for row in csv.DictReader(f)]


@pytest.mark.slow
def test_a_rejected_run_leaves_its_directory_free_and_more_trials_continue(tmp_path):
    run = tmp_path / "run"
    preset = _preset(tmp_path)
    _one_line_error(_invoke("tune", "--preset", preset, "--dir", run, "--dataset", "nosuch"), r"nosuch")
    assert not (run / "config.json").exists()
    # The corrected command takes the directory.
    result = _invoke("tune", "--preset", preset, "--dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    assert _trials(run) == ["0"] and json.loads((run / "config.json").read_text())["trials"] == 1
    # More trials: the search goes on from trial 0, which is not trained again (a trial writes its
    # drift report once, when it ends; its model is deleted if it is not the best).
    first = (run / "kt" / "bayesft" / "trial_0" / "drift_report.json").stat().st_mtime_ns
    result = _invoke("tune", "--preset", preset, "--dir", run, "--quiet", "--trials", "2")
    assert result.exit_code == 0, result.output
    assert _trials(run) == ["0", "1"] and json.loads((run / "config.json").read_text())["trials"] == 2
    assert (run / "kt" / "bayesft" / "trial_0" / "drift_report.json").stat().st_mtime_ns == first
    # Fewer trials, or another setting, stay refused.
    _one_line_error(_invoke("tune", "--preset", preset, "--dir", run, "--trials", "1"), r"trials: 2 there, 1 now")
    _one_line_error(_invoke("tune", "--preset", preset, "--dir", run, "--trials", "2", "--chips", "3"), r"chips: 2 there, 3 now")
