"""BayesFT for any Keras model: `BayesFTHyperModel.from_model` and `bayesft-keras tune --model`.

Where the sites go (per rule, per layer kind), the copy's weights (new or the model's),
the caller's model left alone, the refusals, and the search end to end on a small
Functional model and on keras.applications' MobileNetV2.
"""

import csv
import io
import json
import re
import shlex

import keras
import keras_tuner
import numpy as np
import pytest
from typer.testing import CliRunner

import bayesft_keras as bk
from bayesft_keras.architectures import SiteDropout
from bayesft_keras.cli import app
from bayesft_keras.device.layers import DeviceLayerMixin
from bayesft_keras.reporting import commands
from bayesft_keras.tuning import model_sites
from bayesft_keras.tuning import site_copy
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.tuning.hypermodel import NoiseInjectionHyperModel

DROPOUTS = (SiteDropout, keras.layers.Dropout)  # SpatialDropout1D/2D are Dropout subclasses


def small_functional(output_activation="softmax"):
    """conv -> BN -> ReLU, a 1x1 conv (ReLU inside) that feeds a residual Add, flatten, two Dense."""
    inputs = keras.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    y = keras.layers.Conv2D(4, 1, activation="relu", name="conv2")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(10, activation=output_activation, name="fc2")(x)
    return keras.Model(inputs, outputs, name="small")


def previous_layer(model, dropout):
    """The name of the layer whose output a Dropout layer of a single-path model takes."""
    config = {entry["name"]: entry for entry in model.get_config()["layers"]}
    (node,) = config[dropout]["inbound_nodes"]
    return node["args"][0]["config"]["keras_history"][0]


def dropout_layers(model):
    return [layer for layer in model.layers if isinstance(layer, DROPOUTS)]


def zero_rates(plan):
    return {site.name: 0.0 for site in plan}


# -- where the sites go ---------------------------------------------------------------------


def test_all_rule_puts_a_site_after_each_device_layers_activation_and_the_output_before_its_softmax():
    model = small_functional()
    plan = model_sites.site_plan(model, "all")
    assert [(s.name, s.layer, s.after) for s in plan] == [
        ("conv1", "conv1", "relu1"),  # through BN and ReLU: after the activation
        ("conv2", "conv2", "conv2"),  # its own ReLU; its output feeds the Add
        ("fc1", "fc1", "fc1"),
        ("output", "fc2", "fc2"),  # the zoo's output site
    ]
    copy = site_copy.with_sites(model, {"conv1": 0.1, "conv2": 0.2, "fc1": 0.3, "output": 0.4}, plan)
    dropouts = dropout_layers(copy)
    assert [(d.name, type(d).__name__, d.channelwise, d.rate) for d in dropouts] == [
        ("dropout_conv1", "SiteDropout", True, 0.1),  # channel dropout on feature maps, as the zoo
        ("dropout_conv2", "SiteDropout", True, 0.2),
        ("dropout_fc1", "SiteDropout", False, 0.3),
        ("dropout_output", "SiteDropout", False, 0.4),
    ]
    assert [previous_layer(copy, d.name) for d in dropouts] == ["relu1", "conv2", "fc1", "fc2"]
    # The output layer loses its softmax to a layer after the site: logits -> dropout -> softmax.
    assert copy.get_layer("fc2").get_config()["activation"] == "linear"
    assert previous_layer(copy, "fc2_softmax") == "dropout_output"
    assert copy.get_layer("fc2_softmax").get_config()["activation"] == "softmax"
    assert previous_layer(copy, "conv2") == "dropout_conv1"  # the next layers take the dropped tensor
    assert previous_layer(copy, "bn1") == "conv1"


def test_dense_rule_and_named_layers():
    model = small_functional()
    dense = model_sites.site_plan(model, "dense")
    assert [(s.name, s.after) for s in dense] == [("fc1", "fc1"), ("output", "fc2")]
    for softmax in (keras.layers.Softmax(name="sm"), keras.layers.Activation("softmax", name="sm")):
        separate = keras.Sequential([keras.Input((5,)), keras.layers.Dense(10, name="d"), softmax])
        (site,) = model_sites.site_plan(separate)
        assert (site.name, site.after, site.split) == ("output", "d", False)  # before a softmax layer
        assert [layer.name for layer in site_copy.with_sites(separate, {"output": 0.1}, [site]).layers] == [
            "d", "dropout_output", "sm"
        ]
    named = model_sites.site_plan(model, ["add", "conv1"])  # any layer, e.g. the end of a residual block
    assert [(s.name, s.after) for s in named] == [("conv1", "relu1"), ("add", "add")]  # graph order
    copy = site_copy.with_sites(model, zero_rates(named), named)
    assert [d.name for d in dropout_layers(copy)] == ["dropout_conv1", "dropout_add"]
    assert previous_layer(copy, "flat") == "dropout_add"
    assert copy.get_layer("fc2").get_config()["activation"] == "softmax"  # no output site: kept


def test_sequential_model_stays_sequential_and_logits_get_a_softmax():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="c"),
            keras.layers.LeakyReLU(name="act"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, name="logits"),  # no softmax: logits
        ],
        name="seq",
    )
    plan = model_sites.site_plan(model)
    assert [(s.name, s.after) for s in plan] == [("c", "act"), ("output", "logits")]
    copy = site_copy.with_sites(model, {"c": 0.25, "output": 0.125}, plan, copy_weights=True)
    assert isinstance(copy, keras.Sequential)
    assert [layer.name for layer in copy.layers] == [
        "c", "act", "dropout_c", "flat", "logits", "dropout_output", "probabilities"
    ]
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype="float32")
    np.testing.assert_allclose(
        copy.predict(x, verbose=0), keras.ops.softmax(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6
    )


def test_nested_model_gets_its_sites_inside_and_its_last_layer_is_the_output_site():
    inner_in = keras.Input((6,))
    inner = keras.Model(
        inner_in, keras.layers.Dense(10, activation="softmax", name="head")(
            keras.layers.Dense(8, activation="relu", name="hidden")(inner_in)
        ), name="inner",
    )
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, inner(keras.layers.Dense(6, name="stem")(inputs)), name="outer")
    plan = model_sites.site_plan(outer)
    assert [(s.name, s.model) for s in plan] == [("stem", "outer"), ("hidden", "inner"), ("output", "inner")]
    copy = site_copy.with_sites(outer, zero_rates(plan), plan, copy_weights=True)
    assert [layer.name for layer in copy.get_layer("inner").layers if isinstance(layer, DROPOUTS)] == [
        "dropout_hidden", "dropout_output"
    ]
    assert "dropout_stem" in [layer.name for layer in copy.layers]
    x = np.random.default_rng(1).random((3, 4), dtype="float32")
    np.testing.assert_allclose(copy.predict(x, verbose=0), outer.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_mobilenetv2_sites_one_per_device_layer_and_the_copy_computes_the_same():
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    device = [layer for layer in model.layers if type(layer) in kinds]
    plan = model_sites.site_plan(model, "all")
    assert len(plan) == len(device) == 53
    assert [s.layer for s in plan] == [layer.name for layer in device]
    by_layer = {s.layer: s for s in plan}
    assert by_layer["Conv1"].after == "Conv1_relu"  # Conv -> BN -> ReLU6
    assert by_layer["block_1_project"].after == "block_1_project_BN"  # linear bottleneck: after its BN
    assert by_layer["predictions"].name == "output" and by_layer["predictions"].split
    copy = site_copy.with_sites(model, zero_rates(plan), plan, copy_weights=True)
    dropouts = dropout_layers(copy)
    assert len(dropouts) == 53 and all(d.name == f"dropout_{s.name}" for d, s in zip(dropouts, plan))
    assert all(type(d) is SiteDropout and d.channelwise for d in dropouts[:-1])
    assert type(dropouts[-1]) is SiteDropout and not dropouts[-1].channelwise
    # block_2_add takes the dropped-out bottleneck on its residual path as block_2_expand does.
    assert previous_layer(copy, "block_2_expand") == "dropout_block_1_project"
    x = np.random.default_rng(2).random((2, 32, 32, 3), dtype="float32")
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


# -- weights: new or the model's; the caller's model left alone -----------------------------


def _hp(hypermodel, rate=0.2):
    hp = keras_tuner.HyperParameters()
    for name in hypermodel.hyperparameter_names():
        hp.Fixed(name, rate)
    return hp


def test_init_from_model_starts_from_its_weights_and_from_scratch_does_not(digits):
    model = small_functional()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.x_train[:256], digits.y_train[:256], epochs=1, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    noise = bk.LogNormalDrift(0.5)
    tuned = BayesFTHyperModel.from_model(model, init_from_model=True, noise=noise, epochs=1)
    scratch = BayesFTHyperModel.from_model(model, noise=noise, epochs=1)
    assert tuned.sites == ["conv1", "conv2", "fc1", "output"] and tuned.arch == "small"
    from_model = tuned.build(_hp(tuned))
    new = scratch.build(_hp(scratch))
    assert isinstance(from_model.get_layer("conv1"), DeviceLayerMixin)  # on the device
    for layer, weight in (("conv1", "kernel"), ("bn1", "moving_variance"), ("fc2", "bias")):
        np.testing.assert_array_equal(
            getattr(from_model.get_layer(layer), weight).numpy(), getattr(model.get_layer(layer), weight).numpy()
        )
    assert not np.allclose(new.get_layer("conv1").kernel.numpy(), model.get_layer("conv1").kernel.numpy())
    # Fine-tuned or not, training a trial leaves the caller's model as it was.
    tuned.fit(_hp(tuned), from_model, digits.x_train[:128], digits.y_train[:128], verbose=0)
    assert not np.array_equal(from_model.get_layer("conv1").kernel.numpy(), before[0])  # it trained
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [layer.name for layer in model.layers].count("dropout_conv1") == 0


def test_weights_of_the_model_are_taken_when_from_model_runs():
    model = small_functional()
    hypermodel = BayesFTHyperModel.from_model(model, init_from_model=True)
    kernel = model.get_layer("fc1").kernel.numpy().copy()
    model.get_layer("fc1").kernel.assign(np.zeros_like(kernel))  # the caller changes it afterwards
    built = hypermodel.build(_hp(hypermodel))
    np.testing.assert_array_equal(built.get_layer("fc1").kernel.numpy(), kernel)


def test_noise_injection_baseline_takes_the_same_sites():
    model = small_functional()
    hypermodel = NoiseInjectionHyperModel.from_model(model, sites="dense", noise=bk.LogNormalDrift(0.5))
    assert hypermodel.sites == ["fc1", "output"]
    assert hypermodel.hyperparameter_names() == ["dropout_fc1", "dropout_output", "noise_injection_sigma"]
    assert hypermodel.range_of("output") == (0.1, 0.5) and hypermodel.range_of("fc1") == (0.2, 0.8)


def test_plain_model_of_a_zoo_model_has_keras_layers_only_and_computes_the_same():
    from bayesft_keras import architectures

    model = architectures.build("lenet5", input_shape=(28, 28, 1), dropout={"conv1": 0.3, "output": 0.2})
    plain = site_copy.plain_model(model)
    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers), plain.layers
    dropouts = {layer.name: (type(layer).__name__, layer.rate) for layer in dropout_layers(plain)}
    assert dropouts["dropout_conv1"] == ("SpatialDropout2D", 0.3)
    assert dropouts["dropout_output"] == ("Dropout", 0.2)
    x = np.random.default_rng(3).random((4, 28, 28, 1), dtype="float32")
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# -- refusals --------------------------------------------------------------------------------


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 64)))


def _two_inputs():
    a, b = keras.Input((4,)), keras.Input((4,))
    return keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([a, b])))


def _relu_output():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, activation="relu", name="last")(inputs))


def _built_subclassed():
    model = Subclassed()
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (_built_subclassed, {}, r"Sequential or Functional.*Received: model of class Subclassed$"),
        (lambda: "model.keras", {}, r"`model` must be a Keras 3 `keras.Model`. Received: model of type str"),
        (_two_inputs, {}, r"one input and one output.*2 inputs and 1 outputs"),
        (
            lambda: keras.Sequential([keras.layers.Dense(3)], name="unbuilt"), {},
            r"must be built.*Received: unbuilt model 'unbuilt'$",
        ),
        (_relu_output, {}, r"class probabilities.*'last' \(Dense, activation 'relu'\)"),
        (
            small_functional, {"sites": "everything"},
            r"`sites` must be one of \['all', 'dense'\].*Received: sites='everything'",
        ),
        (small_functional, {"sites": ["fc1", "nope"]}, r"does not have: \['nope'\].*Received: sites=\['fc1', 'nope'\]"),
        (small_functional, {"sites": []}, r"non-empty list of layer names. Received: sites=\[\]"),
        (
            small_functional, {"sites": ["flat"], "init_from_model": "yes"},
            r"`init_from_model` must be True or False. Received: init_from_model='yes'",
        ),
        (small_functional, {"arch": "lenet5"}, r"\['arch'\] apply only"),
    ],
)
def test_bad_models_and_arguments_are_refused_with_one_line(make, kwargs, message):
    with pytest.raises(ValueError) as info:
        BayesFTHyperModel.from_model(make(), **kwargs)
    text = str(info.value)
    assert "\n" not in text and re.search(message, text), text


def test_a_shared_layer_cannot_be_a_site():
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4, name="shared")
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(shared(shared(inputs)))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match=r"'shared' .* called 2 times"):
        model_sites.site_plan(model)
    assert [s.name for s in model_sites.site_plan(model, ["head"])] == ["output"]


# -- the command line ------------------------------------------------------------------------

TINY = """
[model]
arch = "mlp"
{extra}
[data]
max_train_examples = {examples}
[objective]
sigma = 0.8
chips = 2
[search]
trials = {trials}
initial_points = 1
baselines = []
[training]
epochs = 1
batch_size = 64
trial_curve_points = 0
[report]
report_sigmas = [0.0, 1.5, 2]
report_chips = 2
"""


def _preset(tmp_path, trials=2, examples=300, extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(trials=trials, examples=examples, extra=extra))
    return path


def _tune(tmp_path, *args, preset=None):
    """`bayesft-keras tune` with the tiny preset (or `preset`) into tmp_path/run."""
    preset = preset or _preset(tmp_path)
    return CliRunner().invoke(app, ["tune", "--preset", str(preset), "--dir", str(tmp_path / "run"), *args])


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.slow
def test_tune_model_end_to_end_on_a_small_functional_model(tmp_path, monkeypatch):
    path = tmp_path / "small.keras"
    small_functional().save(path)
    run = tmp_path / "run"
    result = _tune(tmp_path, "--model", str(path), "--sites", "conv1,fc2", "--quiet")
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["sites"], config["init_from_model"]) == (str(path), "conv1,fc2", False)
    assert config["model_fingerprint"].startswith("sha256:")
    header = (run / "trials.csv").read_text().splitlines()[0].split(",")
    assert [h for h in header if h.startswith("dropout_")] == ["dropout_conv1", "dropout_output"]
    device = keras.models.load_model(run / "best_model.keras", compile=False)
    plain = keras.models.load_model(run / "best_model_plain.keras", compile=False)
    assert all(isinstance(device.get_layer(name), DeviceLayerMixin) for name in ("conv1", "fc1", "fc2"))
    # Keras's own layers only: it loads without this package.
    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers), plain.layers
    assert [layer.name for layer in plain.layers] == [layer.name for layer in device.layers]
    assert type(plain.get_layer("dropout_conv1")) is keras.layers.SpatialDropout2D
    assert type(plain.get_layer("dropout_output")) is keras.layers.Dropout
    rates = {layer.name: layer.rate for layer in dropout_layers(plain)}
    trials = list(csv.DictReader(io.StringIO((run / "trials.csv").read_text())))
    assert set(rates) == {"dropout_conv1", "dropout_output"}
    assert any(all(abs(float(row[name]) - rate) < 1e-5 for name, rate in rates.items()) for row in trials)
    np.testing.assert_array_equal(plain.get_layer("fc1").kernel.numpy(), device.get_layer("fc1").kernel.numpy())
    assert "small.keras on digits" in result.output and "small.keras on digits" in (run / "summary.md").read_text()
    assert config["arch"] == "small.keras"  # the network's name in tables and summaries
    # The same command from another folder, the model named relatively, resumes the finished run.
    monkeypatch.chdir(tmp_path)
    before = (run / "trials.csv").read_text()
    again = _tune(tmp_path, "--model", "small.keras", "--sites", "conv1,fc2", "--quiet")
    assert again.exit_code == 0, again.output
    assert (run / "trials.csv").read_text() == before
    # So does the command report.html gives (--model, --sites; no --arch, which --model refuses).
    words = shlex.split(commands.tune_command(config, run))
    assert "--arch" not in words and words[words.index("--model") + 1] == str(path)
    words[words.index("--preset") + 1] = str(_preset(tmp_path))  # a preset file outside tuners/
    again = CliRunner().invoke(app, words[1:] + ["--quiet"])
    assert again.exit_code == 0, again.output
    assert (run / "trials.csv").read_text() == before
    # A changed model file is another search: its resume is refused.
    keras.utils.set_random_seed(5)
    small_functional().save(path)
    line = _one_line_error(_tune(tmp_path, "--model", "small.keras", "--sites", "conv1,fc2"))
    assert "other settings" in line and "model_fingerprint" in line, line


@pytest.mark.slow
def test_tune_model_on_keras_applications_mobilenetv2(tmp_path):
    path = tmp_path / "mobilenet.keras"
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10).save(path)
    run = tmp_path / "run"
    preset = _preset(tmp_path, trials=1, examples=64)  # the 8x8x1 digits, brought to the model's 32x32x3
    result = _tune(tmp_path, "--model", str(path), "--init-from-model", "--quiet", preset=preset)
    assert result.exit_code == 0, result.output
    header = (run / "trials.csv").read_text().splitlines()[0].split(",")
    assert len([h for h in header if h.startswith("dropout_")]) == 53
    plain = keras.models.load_model(run / "best_model_plain.keras", compile=False)
    assert len(dropout_layers(plain)) == 53 and plain.layers[-1].name == "predictions_softmax"


def test_cli_refuses_a_subclassed_model_in_one_line(tmp_path):
    keras.saving.register_keras_serializable(package="test_from_model")(Subclassed)
    path = tmp_path / "sub.keras"
    _built_subclassed().save(path)
    line = _one_line_error(_tune(tmp_path, "--model", str(path)))
    assert line.endswith("Received: model of class Subclassed"), line
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "mlp"], r"--model or --arch, not both. Received: --model .*small.keras --arch mlp"),
        (["--task", "detection"], r"`task` must be 'classification' with `model`.*Received: task='detection'"),
        (["--baselines", "ftna"], r"`baselines` must be without \['ftna'\] with `model`.*baselines=\['ftna'\]"),
        (["--warm-start-epochs", "2"], r"`warm_start_epochs` must be 0 with `model`.*Received: warm_start_epochs=2"),
        (["--search-space", "extended"], r"`search_space` must be 'paper' with `model`.*search_space='extended'"),
        (["--device", "pcm"], r"`device` 'pcm' has a periphery.*Received: device='pcm'"),
        (["--input-shape", "16,16,1"], r"`input_shape` must be none with `model`.*Received: input_shape=\(16, 16, 1\)"),
        (["--sites", "nope"], r"does not have: \['nope'\].*Received: sites=\['nope'\]"),
    ],
)
def test_cli_refuses_bad_model_settings_in_one_line(tmp_path, args, message):
    path = tmp_path / "small.keras"
    small_functional().save(path)
    line = _one_line_error(_tune(tmp_path, "--model", str(path), *args))
    assert re.search(message, line), line
    assert not (tmp_path / "run" / "kt").exists()


def test_cli_refuses_a_model_of_other_classes_or_shape_and_a_missing_file(tmp_path):
    inputs = keras.Input((8, 8, 1))
    path = tmp_path / "three.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))).save(path)
    line = _one_line_error(_tune(tmp_path, "--model", str(path)))
    assert re.search(r"has 3 output classes, but dataset 'digits' has 10", line), line
    # Images are brought to a model's (height, width, channels); other inputs must be the data's.
    flat = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    flat.save(tmp_path / "flat.keras")
    line = _one_line_error(_tune(tmp_path, "--model", str(tmp_path / "flat.keras")))
    assert re.search(r"inputs of shape \(64,\), but dataset 'digits' has \(8, 8, 1\).*Received: model=", line), line
    # A preset of its own that names the model cannot resize the data to another shape.
    preset = _preset(tmp_path, extra=f'model = "{tmp_path / "flat.keras"}"\ninput_shape = [16, 16, 1]')
    line = _one_line_error(_tune(tmp_path, preset=preset))
    assert re.search(r"`input_shape` must be none with `model`.*Received: input_shape=\(16, 16, 1\)", line), line
    line = _one_line_error(CliRunner().invoke(app, ["tune", "--model", str(tmp_path / "none.keras")]))
    assert "Model file not found" in line and "none.keras" in line
    line = _one_line_error(CliRunner().invoke(app, ["tune", "--sites", "dense"]))
    assert "--sites and --init-from-model are for --model" in line
