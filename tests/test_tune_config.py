import pytest

from bayesft_keras.tuning import config as config_lib
from bayesft_keras.tuning.config import TuneConfig


def test_every_preset_loads_and_the_paper_settings_are_kept():
    names = config_lib.available_presets()
    assert {"quick", "lenet5-mnist", "vgg11-cifar10", "resnet18-cifar10"} <= set(names)
    for name in names:
        assert config_lib.load_preset(name).name == name
    lenet = config_lib.load_preset("lenet5-mnist")
    assert (lenet.arch, lenet.dataset, lenet.sigma, lenet.chips) == ("lenet5", "mnist5k", 1.5, 30)
    assert (lenet.learning_rate, lenet.clipvalue, lenet.weight_decay, lenet.epochs) == (0.01, 0.1, 1e-4, 20)
    # The authors' Bayes_Mnist.py: every rate in (0.2, 0.8), their first point, 1 + 3 + 16 trials.
    assert (lenet.init, lenet.trials, lenet.initial_points) == ("torch", 20, 4)
    assert lenet.output_rate_range == (0.2, 0.8) and lenet.initial_rates == (0.2, 0.2, 0.2, 0.5, 0.5)
    vgg = config_lib.load_preset("vgg11-cifar10")
    assert (vgg.sigma, vgg.chips, vgg.learning_rate, vgg.normalization) == (0.8, 20, 1e-3, "none")
    resnet = config_lib.load_preset("resnet18-cifar10")
    assert (resnet.sigma, resnet.chips, resnet.learning_rate) == (0.8, 20, 3e-4)
    for preset in (vgg, resnet):
        assert preset.rate_range == (0.2, 0.8) and preset.output_rate_range == (0.1, 0.5)


def test_quick_preset_is_the_default_and_flags_override_it():
    quick = config_lib.load_preset()
    assert quick == config_lib.load_preset("quick") and quick.dataset == "digits"
    changed = quick.replace(sigma=1.2, trials=3, arch=None, bits="none")
    assert (changed.sigma, changed.trials, changed.arch, changed.bits) == (1.2, 3, quick.arch, None)
    assert quick.sigma == 1.0  # replace returns a copy
    # The main job quantizes to the device's levels and warm-starts every trial (see quick.toml).
    assert (quick.bits, quick.warm_start_epochs, quick.report_chips) == (4, 20, 100)


def test_preset_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[model]\narch = "mlp"\n[objective]\nsigma = 0.5\n')
    config = config_lib.load_preset(str(path))
    assert (config.name, config.arch, config.sigma) == ("mine", "mlp", 0.5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sigma = -1\n", "sigma.*-1"),
        ("[search]\ntrials = 0\n", "trials.*0"),
        ("bits = 1\n", "bits.*1"),
        ("[search]\nbaselines = ['magic']\n", "baselines"),
        ("colour = 'red'\n", "Unknown setting"),
        ("sigma = [\n", "Cannot read preset"),
        ("[a]\nsigma = 1\n[b]\nsigma = 2\n", "twice"),
    ],
)
def test_bad_presets_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        config_lib.load_preset(str(path))


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="quick"):
        config_lib.load_preset("no-such-preset")
    with pytest.raises(FileNotFoundError):
        config_lib.load_preset("/nonexistent/x.toml")


@pytest.mark.parametrize(
    "field, value",
    [("sigma", -0.1), ("chips", 0), ("trials", 0), ("bits", 17), ("min_clean_accuracy", 2.0), ("rate_range", (0.5, 0.2))],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=f"{field}"):
        TuneConfig(**{field: value})
