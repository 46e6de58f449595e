import keras
import numpy as np
import pytest
from keras import ops

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device.noise import Compose
from bayesft_keras.device.noise import LogNormalDrift
from bayesft_keras.device.noise import ProgrammingNoise
from bayesft_keras.device.noise import StuckAtFaults

N = 200_000  # cells per statistical check


def _weights(rng, n=N):
    # Bounded away from zero so that log-ratios are well defined.
    w = rng.uniform(0.1, 1.0, n) * rng.choice([-1.0, 1.0], n)
    return ops.convert_to_tensor(w.astype("float32"))


@pytest.mark.parametrize(
    "model",
    [
        LogNormalDrift(0.0),
        ProgrammingNoise(0.0),
        StuckAtFaults(0.0, 0.0),
        Compose([LogNormalDrift(0.0), ProgrammingNoise(0.0), StuckAtFaults(0.0)]),
    ],
    ids=repr,
)
def test_zero_strength_is_exactly_the_identity(model, rng):
    w = _weights(rng, 10_000)
    out = ops.convert_to_numpy(model(w, seed=3))
    np.testing.assert_array_equal(out, ops.convert_to_numpy(w))


@pytest.mark.parametrize("sigma", [0.3, 1.5])
def test_lognormal_drift_log_ratio_is_normal_with_sigma(sigma, rng):
    w = _weights(rng)
    out = ops.convert_to_numpy(LogNormalDrift(sigma)(w, seed=1))
    w = ops.convert_to_numpy(w)
    assert np.all(np.sign(out) == np.sign(w)), "drift keeps signs"
    theta = np.log(out / w)
    # Standard errors: mean sigma/sqrt(N), std sigma/sqrt(2N); 5 standard errors.
    assert abs(theta.mean()) < 5 * sigma / np.sqrt(N)
    assert abs(theta.std() - sigma) < 5 * sigma / np.sqrt(2 * N)


def test_programming_noise_is_additive_relative_to_max(rng):
    w = _weights(rng)
    out = ops.convert_to_numpy(ProgrammingNoise(0.05)(w, seed=2))
    w = ops.convert_to_numpy(w)
    n = (out - w) / np.abs(w).max()
    assert abs(n.mean()) < 5 * 0.05 / np.sqrt(N)
    assert abs(n.std() - 0.05) < 5 * 0.05 / np.sqrt(2 * N)


def test_stuck_at_fault_fractions(rng):
    w = _weights(rng)
    out = ops.convert_to_numpy(StuckAtFaults(p_low=0.1, p_high=0.05)(w, seed=4))
    w = ops.convert_to_numpy(w)
    top = np.abs(w).max()
    low = out == 0
    high = (np.abs(out) == top) & (np.abs(w) != top)
    for frac, p in ((low.mean(), 0.1), (high.mean(), 0.05)):
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / N)
    assert np.all(np.sign(out[high]) == np.sign(w[high]))
    untouched = ~(low | high)
    np.testing.assert_array_equal(out[untouched], w[untouched])


def test_same_seed_same_draw_and_different_seed_different_draw(rng):
    w = _weights(rng, 1000)
    a = ops.convert_to_numpy(LogNormalDrift(0.5)(w, seed=7))
    b = ops.convert_to_numpy(LogNormalDrift(0.5)(w, seed=7))
    c = ops.convert_to_numpy(LogNormalDrift(0.5)(w, seed=8))
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.99


def test_seed_generator_gives_fresh_draws(rng):
    w = _weights(rng, 1000)
    gen = keras.random.SeedGenerator(0)
    a = ops.convert_to_numpy(LogNormalDrift(0.5)(w, seed=gen))
    b = ops.convert_to_numpy(LogNormalDrift(0.5)(w, seed=gen))
    assert np.mean(a != b) > 0.99


def test_compose_applies_in_order_and_names_params():
    model = Compose([LogNormalDrift(0.5), StuckAtFaults(p_low=1.0)])
    assert model.param_names == ("0.sigma", "1.p_low", "1.p_high")
    assert model.params() == [0.5, 1.0, 0.0]
    # Stuck-at-zero for every cell after the drift: all zeros.
    out = ops.convert_to_numpy(model(ops.ones((100,)), seed=0))
    np.testing.assert_array_equal(out, np.zeros(100))
    # Reversed order: drift after stuck-at-zero is still zero; drift of ones is not one.
    swapped = Compose([StuckAtFaults(p_high=1.0), LogNormalDrift(0.5)])
    out = ops.convert_to_numpy(swapped(ops.ones((100,)), seed=0))
    assert np.all(out > 0) and np.mean(out != 1.0) > 0.99


def test_with_params_and_serialization_round_trip():
    model = Compose([LogNormalDrift(0.5), ProgrammingNoise(0.01), StuckAtFaults(0.01, 0.02)])
    changed = model.with_params(**{"0.sigma": 1.0, "2.p_high": 0.0})
    assert changed.params() == [1.0, 0.01, 0.01, 0.0]
    assert model.params() == [0.5, 0.01, 0.01, 0.02], "with_params returns a copy"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert restored == model and restored is not model
    assert noise_lib.get(noise_lib.serialize(model)) == model


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LogNormalDrift(-0.1), "sigma"),
        (lambda: LogNormalDrift("big"), "sigma"),
        (lambda: ProgrammingNoise(-1), "std"),
        (lambda: StuckAtFaults(1.5), "p_low"),
        (lambda: StuckAtFaults(0.6, 0.6), "p_low \\+ p_high"),
        (lambda: Compose([]), "models"),
        (lambda: Compose([0.5]), "DeviceNoise"),
        (lambda: LogNormalDrift(0.1).with_params(std=1.0), "Unknown parameter"),
        (lambda: noise_lib.get(0.5), "noise"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()
