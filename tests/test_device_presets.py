"""Device presets (devices/*.toml) and `--device` in `bayesft-keras evaluate` and `tune`."""

import json
import types

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import bayesft_keras as bk
from bayesft_keras.device import presets as device_presets
from bayesft_keras.cli import app
from bayesft_keras.evaluation import DEFAULT_SIGMAS


def test_the_default_device_is_the_papers_model():
    preset = device_presets.load_device()
    assert preset.name == "lognormal" and preset.is_default
    assert preset.noise == bk.LogNormalDrift(0.0) and preset.periphery is None
    assert preset.param == "sigma" and preset.values == DEFAULT_SIGMAS
    config = types.SimpleNamespace(device="lognormal", sigma=1.5)
    assert device_presets.tuning_device(config) == (bk.LogNormalDrift(1.5), None, None, None)


@pytest.mark.parametrize("name", ["pcm", "reram-cmo"])
def test_measured_device_presets_sweep_time(name):
    preset = device_presets.load_device(name)
    assert preset.values == (1.0, 3600.0, 86400.0, 31536000.0) and preset.target == 86400.0
    assert preset.param in preset.noise.time_params
    assert preset.periphery.tile_size == (256, 256)
    noise = device_presets.tuning_device(types.SimpleNamespace(device=name, sigma=3600.0))[0]
    assert dict(zip(noise.param_names, noise.params()))[preset.param] == 3600.0


def test_a_bad_preset_names_what_is_wrong(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('param = "t"\n[noise]\nclass = "PowerLawDrift"\nt0 = 10.0\nt = 20.0\n[noise.mapping]\nclass = "DifferentialPair"\ng_min = 30.0\n')
    with pytest.raises(ValueError, match="`g_min` of DifferentialPair must be < g_max=25.0"):
        device_presets.load_device(path)
    with pytest.raises(ValueError, match="`device` must be a .toml path or one of"):
        device_presets.load_device("no-such-device")


def test_evaluate_with_a_device_sweeps_its_times_on_the_same_chips(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)]
    )
    path = tmp_path / "mlp.keras"
    model.save(path)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["evaluate", str(path), "--device", "pcm", "--chips", "2", "--max-examples", "50", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["param"] == "t" and report["values"] == [1.0, 3600.0, 86400.0, 31536000.0]
    seeds = np.asarray(report["chip_seeds"])
    assert np.all(seeds == seeds[0])
    result = CliRunner().invoke(app, ["evaluate", str(path), "--device", "pcm", "--noise", "lognormal"])
    assert result.exit_code == 2 and "--device or --noise" in result.output


def test_tune_device_flag_puts_the_preset_on_every_layer(monkeypatch, tmp_path):
    from bayesft_keras.tasks.classification import zoo_hypermodel
    from bayesft_keras.tuning import search

    captured = {}

    def fake_run_search(config, directory, **kwargs):
        captured["config"] = config
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "run_search", fake_run_search)
    result = CliRunner().invoke(app, ["tune", "--device", "pcm", "--arch", "mlp", "--dir", str(tmp_path / "run")])
    config = captured["config"]
    assert config.device == "pcm" and config.sigma == 86400.0, result.output
    assert search._report_sigmas(config) == [1.0, 3600.0, 86400.0, 31536000.0]
    data = types.SimpleNamespace(input_shape=(64,), num_classes=10)
    hypermodel = zoo_hypermodel(config, data)
    assert isinstance(hypermodel.noise, bk.PCMLikeNoise) and hypermodel.noise.t == 86400.0
    import keras_tuner

    built = hypermodel.build(keras_tuner.HyperParameters())
    layers = bk.device_layers(built)
    assert layers and all(layer.periphery == device_presets.load_device("pcm").periphery for layer in layers)


def test_tune_with_an_unknown_device_fails_fast(tmp_path):
    result = CliRunner().invoke(app, ["tune", "--device", "no-such-device", "--dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "`device` must be a .toml path or one of" in result.output
