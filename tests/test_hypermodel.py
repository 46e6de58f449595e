import math

import keras
import keras_tuner as kt
import numpy as np
import pytest

import bayesft_keras as bk
from bayesft_keras import architectures
from bayesft_keras import data
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.tuning.hypermodel import NoiseInjectionHyperModel
from bayesft_keras.tuning.recipe import RECIPES
from bayesft_keras.tuning.recipe import TorchAdam
from bayesft_keras.tuning.schedules import OneCycle
from bayesft_keras.tuning.schedules import OneCycleMomentum

ARCHS = ["mlp", "lenet5", "alexnet", "vgg11", "vgg16", "resnet18", "mobilenetv2"]
SMALL = {"width": 0.125, "input_shape": (16, 16, 3)}


def dropout_rates(model, sites):
    rates = {}
    for site in sites:
        layers = architectures.dropout_layers(model, site)
        assert layers, site
        assert len({l.rate for l in layers}) == 1, site
        rates[site] = layers[0].rate
    return rates


def set_random_values(hp, hypermodel, seed):
    rng = np.random.default_rng(seed)
    for p in hp.space:
        hp.values[p.name] = float(rng.uniform(p.min_value, p.max_value))


# -- search space ----------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", [None, "layer", "stage"])
@pytest.mark.parametrize("arch", ARCHS)
def test_one_float_per_site_with_the_papers_ranges(arch, granularity):
    hm = BayesFTHyperModel(arch, granularity=granularity)
    sites = architectures.sites(arch, granularity=granularity)
    hp = hm.hyperparameters()
    assert hm.sites == sites
    assert [p.name for p in hp.space] == [f"dropout_{s}" for s in sites]
    for p in hp.space:
        assert isinstance(p, kt.engine.hyperparameters.Float)
        expected = (0.1, 0.5) if p.name == "dropout_output" else (0.2, 0.8)
        assert (p.min_value, p.max_value) == expected, p.name


def test_hyperparameter_names_and_keras_tuner_declaration():
    hm = BayesFTHyperModel("vgg11", **SMALL)
    names = ["dropout_stage1", "dropout_stage2", "dropout_stage3", "dropout_fc1", "dropout_fc2",
             "dropout_output"]
    assert hm.hyperparameter_names() == names
    hp = kt.HyperParameters()
    rates = hm.declare_hyperparameters(hp)
    assert [p.name for p in hp.space] == names
    assert rates == {s: hp.values[f"dropout_{s}"] for s in hm.sites}


def test_paper_site_counts():
    assert len(BayesFTHyperModel("lenet5").sites) == 5
    assert len(BayesFTHyperModel("vgg11").sites) == 6
    assert len(BayesFTHyperModel("resnet18").sites) == 6


def test_configured_ranges():
    hm = BayesFTHyperModel("lenet5", rate_range=(0.3, 0.6), output_rate_range=(0.05, 0.2))
    ranges = {p.name: (p.min_value, p.max_value) for p in hm.hyperparameters().space}
    assert ranges.pop("dropout_output") == (0.05, 0.2)
    assert set(ranges.values()) == {(0.3, 0.6)}


@pytest.mark.parametrize(
    "arch, granularity", [("lenet5", None), ("vgg11", "stage"), ("vgg11", "layer"),
                          ("resnet18", "stage"), ("mobilenetv2", "stage"), ("mlp", None)]
)
def test_built_model_takes_each_rate_on_its_sites_layers(arch, granularity):
    kwargs = {} if arch in ("lenet5", "mlp") else SMALL
    hm = BayesFTHyperModel(arch, granularity=granularity, **kwargs)
    hp = hm.hyperparameters()
    for seed in (1, 2):
        set_random_values(hp, hm, seed)
        model = hm.build(hp)
        assert dropout_rates(model, hm.sites) == {s: hp.values[f"dropout_{s}"] for s in hm.sites}
        assert hm.rates(hp) == dropout_rates(model, hm.sites)


def test_device_settings_are_fixed_for_the_search():
    hm = BayesFTHyperModel("lenet5", noise=bk.LogNormalDrift(1.5), bits=4, width=0.5)
    hp = hm.hyperparameters()
    for seed in (1, 2):
        set_random_values(hp, hm, seed)
        layers = bk.device_layers(hm.build(hp))
        assert len(layers) == 5
        assert all(l.bits == 4 and l.noise.sigma == 1.5 for l in layers)


# -- training recipe -------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["lenet5", "vgg11", "resnet18"])
def test_papers_recipe_per_architecture(arch):
    kwargs = {} if arch == "lenet5" else SMALL
    hm = BayesFTHyperModel(arch, steps_per_epoch=10, epochs=3, **kwargs)
    model = hm.build(hm.hyperparameters())
    opt = model.optimizer
    assert isinstance(opt, TorchAdam)  # PyTorch's Adam, as the authors train
    schedule = opt._learning_rate
    assert isinstance(schedule, OneCycle)
    assert schedule.total_steps == 30
    expected = {"lenet5": 0.01, "vgg11": 1e-3, "resnet18": 3e-4}[arch]
    assert schedule.max_learning_rate == expected == RECIPES[arch].learning_rate
    assert isinstance(opt.beta_1, OneCycleMomentum) and opt.beta_1.total_steps == 30
    if arch == "lenet5":
        assert opt.clipvalue == 0.1 and opt.l2 == 1e-4  # coupled L2, as torch.optim.Adam
    else:
        assert opt.clipvalue is None and opt.l2 == 0.0
    assert model.loss == "sparse_categorical_crossentropy"


def test_recipe_overrides():
    hm = BayesFTHyperModel("lenet5", learning_rate=0.002, clipvalue=None, weight_decay=5e-4)
    opt = hm.build(hm.hyperparameters()).optimizer
    assert float(opt.learning_rate) == pytest.approx(0.002)  # constant: steps not known yet
    assert opt.clipvalue is None and opt.l2 == 5e-4
    assert BayesFTHyperModel("vgg11", learning_rate=None, **SMALL).learning_rate == 1e-3


def test_fixed_rates_outside_the_range_are_built():
    # Baselines (no dropout, uniform rate) pin every site with hp.Fixed.
    hm = BayesFTHyperModel("lenet5")
    hp = kt.HyperParameters()
    for name in hm.hyperparameter_names():
        hp.Fixed(name, 0.0)
    model = hm.build(hp)
    assert set(dropout_rates(model, hm.sites).values()) == {0.0}


def test_fit_sizes_the_one_cycle_schedule_to_the_training():
    x = np.random.default_rng(0).random((100, 8, 8, 1), dtype="float32")
    y = np.arange(100) % 10
    hm = BayesFTHyperModel("mlp", input_shape=(8, 8, 1), width=0.125, epochs=2, batch_size=32)
    hp = hm.hyperparameters()
    model = hm.build(hp)
    hm.fit(hp, model, x, y, verbose=0)
    schedule = model.optimizer._learning_rate
    assert schedule.total_steps == 2 * math.ceil(100 / 32) == int(model.optimizer.iterations)
    # Training ended on the schedule's last step: the final, smallest rate.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01 / 25 / 1e4, rel=1e-4)
    # validation_split holds out samples as Keras does (floor of the kept part).
    model = hm.build(hp)
    hm.fit(hp, model, x, y, validation_split=0.25, epochs=3, verbose=0)
    assert model.optimizer._learning_rate.total_steps == 3 * math.ceil(75 / 32)


def test_fit_counts_steps_of_a_batched_dataset():
    import tensorflow as tf

    x = np.random.default_rng(0).random((50, 8, 8, 1), dtype="float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(50) % 10)).batch(16)
    hm = BayesFTHyperModel("mlp", input_shape=(8, 8, 1), width=0.125, epochs=1)
    hp = hm.hyperparameters()
    model = hm.build(hp)
    hm.fit(hp, model, ds, verbose=0)
    assert model.optimizer._learning_rate.total_steps == 4 == int(model.optimizer.iterations)

    unknown = ds.filter(lambda a, b: True)  # cardinality unknown
    with pytest.raises(ValueError, match="pass `steps_per_epoch`"):
        hm.fit(hp, hm.build(hp), unknown, verbose=0)


def test_recipe_learns_digits(digits):
    keras.utils.set_random_seed(0)
    hm = BayesFTHyperModel("mlp", digits.input_shape, digits.num_classes, width=0.25, epochs=8)
    hp = hm.hyperparameters()  # default rates: the lower ends of the ranges
    model = hm.build(hp)
    hm.fit(hp, model, digits.x_train, digits.y_train, verbose=0)
    _, accuracy = model.evaluate(digits.x_test, digits.y_test, verbose=0)
    # Chance is 0.1; a 3-layer MLP reaches ~0.95 on these 8x8 digits.
    assert accuracy > 0.85


@pytest.mark.slow
def test_keras_tuner_search_uses_the_hypermodel(digits, tmp_path):
    hm = BayesFTHyperModel(
        "mlp", digits.input_shape, digits.num_classes, width=0.25, epochs=2,
        noise=bk.LogNormalDrift(0.3),
    )
    tuner = kt.RandomSearch(hm, objective="val_accuracy", max_trials=2, seed=3,
                            directory=tmp_path, project_name="t")
    tuner.search(digits.x_train, digits.y_train, validation_data=(digits.x_val, digits.y_val),
                 verbose=0)
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2
    for trial in trials:
        for site in hm.sites:
            low, high = hm.range_of(site)
            assert low <= trial.hyperparameters.values[f"dropout_{site}"] <= high
    best_hp = tuner.get_best_hyperparameters()[0]
    best = tuner.get_best_models()[0]
    assert dropout_rates(best, hm.sites) == hm.rates(best_hp)


# -- noise-injection baseline ----------------------------------------------------------------


@pytest.mark.slow
def test_noise_injection_trains_at_the_injected_sigma_and_evaluates_at_the_target():
    hm = NoiseInjectionHyperModel(
        "mlp", input_shape=(8, 8, 1), width=0.125, noise=bk.LogNormalDrift(0.8),
        sigma_range=(0.1, 1.5), epochs=2, batch_size=16,
    )
    assert hm.hyperparameter_names()[-1] == "noise_injection_sigma"
    hp = hm.hyperparameters()
    sigma = hp.space[-1]
    assert (sigma.name, sigma.min_value, sigma.max_value) == ("noise_injection_sigma", 0.1, 1.5)
    hp.values["noise_injection_sigma"] = 0.3
    model = hm.build(hp)
    layers = bk.device_layers(model)
    assert layers and all(l.train_noise for l in layers)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append([float(l.device_params.numpy()[0]) for l in layers])

    x = np.random.default_rng(0).random((32, 8, 8, 1), dtype="float32")
    hm.fit(hp, model, x, np.arange(32) % 10, verbose=0, callbacks=[Record()])
    np.testing.assert_allclose(seen, 0.3, rtol=1e-6)
    assert len(seen) == 4
    assert all(float(l.device_params.numpy()[0]) == pytest.approx(0.8) for l in layers)


def test_noise_injection_needs_a_sigma():
    with pytest.raises(ValueError, match="needs a noise model with a `sigma` parameter"):
        NoiseInjectionHyperModel("mlp")
    with pytest.raises(ValueError, match="`sigma_range` must be a pair"):
        NoiseInjectionHyperModel("mlp", noise=bk.LogNormalDrift(0.5), sigma_range=(1.0, 0.5))


# -- user build functions --------------------------------------------------------------------


def user_build_fn(rates):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.SpatialDropout2D(rates["features"], name="dropout_features")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10)(x)
    x = keras.layers.Dropout(rates["output"], name="dropout_output")(x)
    return keras.Model(inputs, keras.layers.Softmax()(x))


def test_wraps_a_user_build_function():
    hm = BayesFTHyperModel(build_fn=user_build_fn, sites=["features", "output"])
    hp = hm.hyperparameters()
    assert {p.name: (p.min_value, p.max_value) for p in hp.space} == {
        "dropout_features": (0.2, 0.8), "dropout_output": (0.1, 0.5)
    }
    set_random_values(hp, hm, 0)
    model = hm.build(hp)
    assert dropout_rates(model, hm.sites) == hm.rates(hp)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert not bk.device_layers(model)


def test_user_build_function_is_put_on_the_device():
    hm = BayesFTHyperModel(build_fn=user_build_fn, sites=["features", "output"],
                           noise=bk.LogNormalDrift(0.8), bits=5)
    hp = hm.hyperparameters()
    set_random_values(hp, hm, 1)
    model = hm.build(hp)
    layers = bk.device_layers(model)
    assert [type(l) for l in layers] == [bk.ReRAMConv2D, bk.ReRAMDense]
    assert all(l.bits == 5 and l.noise.sigma == 0.8 for l in layers)
    assert dropout_rates(model, hm.sites) == hm.rates(hp)


def test_compiled_user_model_keeps_its_recipe():
    def build_fn(rates):
        model = user_build_fn(rates)
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
        return model

    hm = BayesFTHyperModel(build_fn=build_fn, sites=["features", "output"], noise=bk.LogNormalDrift(0.5))
    hp = hm.hyperparameters()
    model = hm.build(hp)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert bk.device_layers(model)
    x = np.random.default_rng(0).random((20, 8, 8, 1), dtype="float32")
    hm.fit(hp, model, x, np.arange(20) % 10, epochs=1, verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("vgg19",), {}, r"Unknown architecture 'vgg19'. Valid names: mlp, lenet5"),
        ((), {}, r"Give `arch` \(one of .*\) or `build_fn`"),
        (("lenet5",), {"rate_range": (0.8, 0.2)}, r"`rate_range` must satisfy 0 <= low < high < 1"),
        (("lenet5",), {"output_rate_range": (0.1, 1.0)}, r"`output_rate_range`"),
        (("lenet5",), {"epochs": 0}, r"`epochs` must be an int >= 1. Received: epochs=0"),
        (("lenet5",), {"learning_rate": -1}, r"`learning_rate` must be a positive number"),
        (("lenet5",), {"clipvalue": 0}, r"`clipvalue` must be a positive number or None"),
        (("lenet5",), {"input_shape": (8, 8, 1)}, r"needs at least 28x28"),
        (("lenet5",), {"sites": ["a"]}, r"`sites` is for `build_fn`"),
        ((), {"build_fn": user_build_fn}, r"`build_fn` needs `sites`"),
        (("lenet5",), {"build_fn": user_build_fn, "sites": ["a"]}, r"\['arch'\] apply only"),
        ((), {"build_fn": user_build_fn, "sites": ["a", "a"]}, r"distinct"),
        ((), {"build_fn": 3, "sites": ["a"]}, r"`build_fn` must be a function"),
        (("lenet5",), {"noise": "drift"}, r"`noise` must be a DeviceNoise"),
    ],
)
def test_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BayesFTHyperModel(*args, **kwargs)


# -- OneCycle --------------------------------------------------------------------------------


@pytest.mark.parametrize("total, pct_start, anneal", [(100, 0.3, "cos"), (37, 0.25, "linear"),
                                                       (5, 0.3, "cos"), (2, 0.3, "linear")])
def test_one_cycle_matches_pytorch(total, pct_start, anneal):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=0.01)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.01, total_steps=total, pct_start=pct_start, anneal_strategy=anneal
    )
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    schedule = OneCycle(0.01, total, pct_start=pct_start, anneal_strategy=anneal)
    ours = [float(schedule(step)) for step in range(total)]
    # float32: absolute error up to its resolution at the peak rate (~1.2e-7 * 0.01).
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1.2e-9)
    assert float(schedule(total + 10)) == pytest.approx(expected[-1], abs=1.2e-9)


def test_one_cycle_shape_and_serialization(tmp_path):
    schedule = OneCycle(1e-3, 100)
    rates = np.array([float(schedule(s)) for s in range(100)])
    peak = int(np.argmax(rates))
    assert peak == 29 and rates[peak] == pytest.approx(1e-3)
    assert np.all(np.diff(rates[: peak + 1]) > 0) and np.all(np.diff(rates[peak:]) < 0)
    # float32 resolution at the peak: ~1.2e-7 * 1e-3.
    assert rates[0] == pytest.approx(1e-3 / 25, abs=1.2e-10)
    assert rates[-1] == pytest.approx(1e-3 / 25 / 1e4, abs=1.2e-10)
    restored = OneCycle.from_config(schedule.get_config())
    assert float(restored(57)) == float(schedule(57))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(schedule), "mse")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer._learning_rate.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"total_steps": 0}, r"`total_steps` must be an int >= 1"),
        ({"pct_start": 1.0}, r"`pct_start` must be in \(0, 1\)"),
        ({"anneal_strategy": "exp"}, r"`anneal_strategy` must be one of"),
        ({"max_learning_rate": 0}, r"`max_learning_rate` must be a positive number"),
    ],
)
def test_one_cycle_bad_arguments(kwargs, message):
    args = {"max_learning_rate": 0.01, "total_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        OneCycle(**args)
