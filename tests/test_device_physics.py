"""Device physics: conductance mappings, drift over time, read noise, periphery (issue 17).

Statistical checks use tolerances of 5 standard errors, computed from the
sample size.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import bayesft_keras as bk
from bayesft_keras.device import physics
from bayesft_keras.device.conductance import DifferentialPair
from bayesft_keras.device.conductance import SingleDevice
from bayesft_keras.device.noise import Compose
from bayesft_keras.device.noise import LogNormalDrift
from bayesft_keras.device.periphery import Periphery
from bayesft_keras.device.seeds import as_stream

TESTS = Path(__file__).parent
N = 100_000


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _g(value, n=N):
    return ops.convert_to_tensor(np.full(n, value, dtype="float32"))


# -- formulas, statistically ------------------------------------------------------


@pytest.mark.parametrize("t", [3600.0, 365 * 86400.0])
def test_power_law_drift_log_ratio_against_nu(t):
    nu, nu_std, t0 = 0.05, 0.02, 1.0
    model = bk.PowerLawDrift(nu=nu, nu_std=nu_std, t=t, t0=t0, mapping=DifferentialPair(g_min=1.0))
    g_prog = _g(10.0)
    g_t = model.drift(g_prog, g_prog, as_stream(1), model.params())
    log_ratio = np.log(_np(g_t) / _np(g_prog))
    scale = np.log(t / t0)
    # log(G(t)/G(t0)) = -nu log(t/t0): mean -nu_mean L, std nu_std L; SE std/sqrt(N), std/sqrt(2N).
    assert abs(log_ratio.mean() + nu * scale) < 5 * nu_std * scale / np.sqrt(N)
    assert abs(log_ratio.std() - nu_std * scale) < 5 * nu_std * scale / np.sqrt(2 * N)


def test_pcm_drift_exponent_and_programming_spread_depend_on_g():
    model = bk.PCMLikeNoise()
    for level in (2.0, 20.0):
        g = _g(level)
        g_rel = level / 25.0
        mu = np.clip(-0.0155 * np.log(g_rel) + 0.0244, 0.049, 0.1)
        spread = np.clip(-0.0125 * np.log(g_rel) - 0.0059, 0.008, 0.045)
        nu = _np(model.drift_exponents(g, as_stream(2), model.params()))
        # |mu + s n| is a folded normal; at these levels mu > 2.5 s, so its mean and std are mu and s.
        assert abs(nu.mean() - mu) < 5 * spread / np.sqrt(N)
        assert abs(nu.std() - spread) < 5 * spread / np.sqrt(2 * N) + 2e-4
        sigma = (0.26348 + 1.9650 * g_rel - 1.1731 * g_rel**2) * 25.0 / 25.0
        prog = _np(model.program(g, as_stream(3), model.params())) - level
        assert abs(prog.mean()) < 5 * sigma / np.sqrt(N) + 1e-3
        assert abs(prog.std() - sigma) < 5 * sigma / np.sqrt(2 * N)


def test_cmo_relaxation_mean_and_spread_follow_log_t():
    model = bk.ReRamCMONoise(read_noise_scale=0.0)
    t = 86400.0
    g_prog = _g(50.0)
    params = [1.0, 0.0, 1.0, t]
    shift = _np(model.drift(g_prog, g_prog, as_stream(4), params)) - 50.0
    mean, std = -0.08900206 * np.log(t), 0.04201137 * np.log(t) + 0.41183342
    assert abs(shift.mean() - mean) < 5 * std / np.sqrt(N)
    assert abs(shift.std() - std) < 5 * std / np.sqrt(2 * N)
    # At t = 0 the device is exactly as programmed.
    np.testing.assert_array_equal(_np(model.drift(g_prog, g_prog, as_stream(4), [1.0, 1.0, 1.0, 0.0])), 50.0)


# -- mapping ------------------------------------------------------------------------


def test_differential_pair_and_single_device_round_trip(rng):
    w = ops.convert_to_tensor(rng.normal(size=(40, 12)).astype("float32"))
    for mapping in (DifferentialPair(2.0, 30.0), DifferentialPair(per_column=True), SingleDevice()):
        gs, info = mapping.to_conductances(w)
        for g in gs:
            g = _np(g)
            assert g.min() >= mapping.g_min - 1e-4 and g.max() <= mapping.g_max + 1e-4
        np.testing.assert_allclose(_np(mapping.to_weights(gs, info)), _np(w), atol=1e-5)
    g_plus, g_minus = DifferentialPair(2.0, 30.0).to_conductances(w)[0]
    # The largest |w| reaches g_max; the idle device of every pair sits at g_min.
    assert np.isclose(max(_np(g_plus).max(), _np(g_minus).max()), 30.0)
    assert np.all(np.minimum(_np(g_plus), _np(g_minus)) == 2.0)


def test_zero_weight_drifts_under_differential_mapping():
    w = ops.convert_to_tensor(np.array([0.0] * 500 + [1.0, -1.0], dtype="float32"))
    for model in (
        physics.OnConductances(LogNormalDrift(0.5), DifferentialPair(g_min=2.0, g_max=25.0)),
        bk.PowerLawDrift(nu=0.05, nu_std=0.02, t=1e5, mapping=DifferentialPair(g_min=2.0)),
    ):
        drifted = _np(model(w, seed=5))[:500]
        assert np.all(drifted != 0.0) and drifted.std() > 1e-3
    # On weights (the paper's model), or with g_min = 0, a zero stays zero.
    np.testing.assert_array_equal(_np(LogNormalDrift(0.5)(w, seed=5))[:500], 0.0)
    on_zero = physics.OnConductances(LogNormalDrift(0.5), DifferentialPair(g_min=0.0))
    np.testing.assert_array_equal(_np(on_zero(w, seed=5))[:500], 0.0)


# -- time: one chip, read at several times ------------------------------------------


def _mlp(noise, periphery=None, units=(16, 10), inputs=32):
    layers = [keras.Input((inputs,))]
    layers += [bk.ReRAMDense(u, noise=noise, periphery=periphery, activation="relu") for u in units[:-1]]
    layers.append(bk.ReRAMDense(units[-1], noise=noise, periphery=periphery))
    return keras.Sequential(layers)


def test_time_sweep_reads_the_same_programmed_chip(rng):
    model = bk.PCMLikeNoise()
    w = rng.normal(size=(30, 8)).astype("float32")
    runs = [model.conductances(w, seed=11, params=[1.0, 1.0, 1.0, t]) for t in (1.0, 3600.0, 3.15e7)]
    for _, programmed, _ in runs[1:]:
        for a, b in zip(programmed, runs[0][1]):
            np.testing.assert_array_equal(_np(a), _np(b))
    assert np.mean(_np(runs[2][2][0])) < np.mean(_np(runs[0][2][0]))  # drifted down over a year

    net = _mlp(bk.PCMLikeNoise())
    x, y = rng.normal(size=(64, 32)).astype("float32"), rng.integers(0, 10, 64)
    times = [1.0, 3600.0, 86400.0, 3.15e7]
    report = bk.evaluate_drift(net, (x, y), param="t", values=times, chips=3, progress=False)
    assert np.all(report.chip_seeds == report.chip_seeds[0])  # the same chips at every time
    sigma_report = bk.evaluate_drift(net, (x, y), param="drift_scale", values=[0.5, 1.0], chips=3, progress=False)
    assert not np.array_equal(sigma_report.chip_seeds[0], sigma_report.chip_seeds[1])


# -- read noise: fresh on every pass, the chip stays -----------------------------------


def test_read_noise_differs_between_passes_while_the_chip_stays(rng):
    x = rng.normal(size=(8, 32)).astype("float32")
    for noise, periphery in (
        (Compose([bk.PowerLawDrift(nu=0.05, nu_std=0.02, t=3600.0), bk.ReadNoise(0.02)]), None),
        (bk.PowerLawDrift(nu=0.05, nu_std=0.02, t=3600.0), Periphery(out_noise=0.05)),
    ):
        net = _mlp(noise, periphery)
        bk.resample(net, 3)
        layer = net.layers[0]
        chip_before = _np(layer.chip_kernel())
        first, second = _np(net(x)), _np(net(x))
        assert np.abs(first - second).max() > 1e-4
        np.testing.assert_array_equal(_np(layer.chip_kernel()), chip_before)
        bk.resample(net, 3)  # the same chip repeats the same sequence of reads
        np.testing.assert_array_equal(_np(net(x)), first)
        with bk.noise_off(net):  # no chip noise, no read noise
            np.testing.assert_array_equal(_np(net(x)), _np(net(x)))
    # Without read noise, two passes on one chip are identical.
    net = _mlp(bk.PowerLawDrift(nu=0.05, nu_std=0.02, t=3600.0))
    bk.resample(net, 3)
    np.testing.assert_array_equal(_np(net(x)), _np(net(x)))


def test_evaluator_draws_read_noise_per_batch_and_reproduces_chips(rng):
    x = rng.normal(size=(16, 32)).astype("float32")
    xx, yy = np.concatenate([x, x]), np.zeros(32, "int32")
    net = _mlp(Compose([bk.PowerLawDrift(nu=0.05, nu_std=0.02, t=3600.0), bk.ReadNoise(0.05)]))
    predictions = []
    evaluator = bk.evaluation.DriftEvaluator(
        net, metric=lambda y, p: predictions.append(p) or 0.0, batch_size=16
    )
    evaluator.set_data(xx, yy)
    evaluator.chip_metrics([7, 8])
    evaluator.chip_metrics([7, 8])
    first, again = predictions[0], predictions[2]
    np.testing.assert_array_equal(first, again)  # a chip, with its reads, is reproducible
    assert np.abs(first[:16] - first[16:]).max() > 1e-4  # the two batches read the chip afresh
    chip_part = predictions[0] - predictions[1]  # different chips differ more than reads do
    assert np.abs(chip_part).mean() > np.abs(first[:16] - first[16:]).mean() / 10


# -- periphery -------------------------------------------------------------------------


def _integer_weights(layer, rng):
    for v in layer.trainable_weights:
        v.assign(rng.integers(-3, 4, size=v.shape).astype("float32"))


def test_tiling_with_ideal_devices_equals_the_untiled_layer_exactly(rng):
    # Integer-valued weights and inputs: every partial sum is exact in float32,
    # so the tiled sum must equal the untiled product bit for bit.
    x = rng.integers(-3, 4, size=(5, 300)).astype("float32")
    dense = bk.ReRAMDense(70)
    tiled = bk.ReRAMDense(70, periphery=Periphery(tile_size=(64, 16)))
    dense.build((None, 300))
    tiled.build((None, 300))
    _integer_weights(dense, rng)
    for a, b in zip(tiled.weights, dense.weights):
        a.assign(b)
    np.testing.assert_array_equal(_np(tiled(x)), _np(dense(x)))
    assert len(tiled.periphery.blocks(300, 70)[0]) == 5 and len(tiled.periphery.blocks(300, 70)[1]) == 5

    images = rng.integers(-2, 3, size=(2, 9, 9, 20)).astype("float32")
    conv = bk.ReRAMConv2D(12, 3, padding="same")
    tiled_conv = bk.ReRAMConv2D(12, 3, padding="same", periphery=Periphery(tile_size=(36, 5)))
    for layer in (conv, tiled_conv):
        layer.build((None, 9, 9, 20))
    _integer_weights(conv, rng)
    for a, b in zip(tiled_conv.weights, conv.weights):
        a.assign(b)
    np.testing.assert_array_equal(_np(tiled_conv(images)), _np(conv(images)))

    # A drift-compensated, tiled chip with its noise switched off: still exactly the layer.
    noisy = bk.ReRAMDense(
        70, noise=bk.PCMLikeNoise(t=86400.0), periphery=Periphery(tile_size=(64, 16), drift_compensation=True)
    )
    noisy.build((None, 300))
    for a, b in zip(noisy.trainable_weights, dense.trainable_weights):
        a.assign(b)
    noisy.noise_enabled.assign(0.0)
    np.testing.assert_array_equal(_np(noisy(x)), _np(dense(x)))


def test_adc_bound_and_noise_in_full_scale_units(rng):
    x = rng.normal(size=(400, 64)).astype("float32")
    clean = bk.ReRAMDense(32, use_bias=False)
    clean.build((None, 64))
    bounded = bk.ReRAMDense(32, use_bias=False, periphery=Periphery(out_bound=0.5))
    noisy = bk.ReRAMDense(32, use_bias=False, periphery=Periphery(out_noise=0.05))
    for layer in (bounded, noisy):
        layer.build((None, 64))
        layer.kernel.assign(clean.kernel)
    full_scale = np.abs(x).max(axis=1, keepdims=True) * np.abs(_np(clean.kernel)).max()
    ideal = _np(clean(x)) / full_scale
    np.testing.assert_allclose(_np(bounded(x)) / full_scale, np.clip(ideal, -0.5, 0.5), atol=1e-5)
    noise = _np(noisy(x)) / full_scale - ideal
    n = noise.size
    assert abs(noise.mean()) < 5 * 0.05 / np.sqrt(n)
    assert abs(noise.std() - 0.05) < 5 * 0.05 / np.sqrt(2 * n)


def test_global_drift_compensation_undoes_a_uniform_drift(rng):
    x = rng.normal(size=(10, 32)).astype("float32")
    uniform = bk.PowerLawDrift(nu=0.1, nu_std=0.0, t=1e6, mapping=DifferentialPair(0.0, 25.0))
    plain = _mlp(uniform, units=(10,))
    compensated = _mlp(uniform, Periphery(drift_compensation=True), units=(10,))
    compensated.set_weights(plain.get_weights())
    bk.resample(plain, 1)
    bk.resample(compensated, 1)
    layer = plain.layers[0]
    with bk.noise_off(plain):
        before = _np(plain(x)) - _np(layer.bias)
    after = _np(plain(x)) - _np(layer.bias) * (1e6 ** -0.1)
    np.testing.assert_allclose(after, before * (1e6 ** -0.1), rtol=1e-4, atol=1e-5)
    restored = _np(compensated(x)) - _np(layer.bias) * (1e6 ** -0.1)
    np.testing.assert_allclose(restored, before, rtol=1e-4, atol=1e-5)


# -- save / load, validation -------------------------------------------------------------


def test_save_and_load_keep_every_device_setting(tmp_path, rng):
    dense_noise = Compose(
        [
            bk.PCMLikeNoise(
                prog_noise_scale=0.5, t=3600.0, t0=10.0, remap=True,
                mapping=DifferentialPair(g_min=1.0, g_max=30.0, per_column=True),
            ),
            bk.ReadNoise(0.01),
        ]
    )
    conv_noise = physics.OnConductances(
        bk.ReRamCMONoise(acceptance_range=2.0, t=86400.0, mapping=SingleDevice(5.0, 80.0)), None
    )
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            bk.ReRAMConv2D(4, 3, noise=bk.PowerLawDrift(0.04, 0.01, t=100.0, t0=2.0), periphery=Periphery(tile_size=(27, 2))),
            bk.ReRAMConv2D(4, 3, noise=physics.PolynomialProgrammingNoise(0.7, coeffs=(0.1, 0.2), g_ref=20.0)),
            keras.layers.Flatten(),
            bk.ReRAMDense(
                6, noise=dense_noise, seed=4,
                periphery=Periphery(tile_size=(32, 4), out_noise=0.03, out_bound=8.0, drift_compensation=True),
            ),
        ]
    )
    bk.resample(model, 2)
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    expected = _np(model(x))
    loaded = keras.models.load_model(path)
    for old, new in zip(model.layers, loaded.layers):
        assert old.get_config() == new.get_config()
        if hasattr(old, "noise"):
            assert old.noise == new.noise and old.periphery == new.periphery
    assert loaded.layers[-1].noise.models[0].mapping == DifferentialPair(1.0, 30.0, per_column=True)
    assert loaded.layers[-1].noise.models[0].remap is True
    assert conv_noise == keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(conv_noise))
    # Same chip seeds and read seeds: the loaded model reads the same as the original did.
    np.testing.assert_array_equal(_np(loaded(x)), expected)


@pytest.mark.parametrize(
    "make, argument, value, allowed",
    [
        (lambda: DifferentialPair(g_min=25.0, g_max=25.0), "g_min", "25.0", "< g_max"),
        (lambda: SingleDevice(g_min=30.0, g_max=10.0), "g_min", "30.0", "< g_max"),
        (lambda: DifferentialPair(g_min=-1.0), "g_min", "-1.0", ">= 0"),
        (lambda: bk.PowerLawDrift(t=0.5, t0=1.0), "t", "0.5", ">= t0"),
        (lambda: bk.PowerLawDrift(nu=0.05).with_params(t=0.1), "t", "0.1", ">= t0"),
        (lambda: bk.PCMLikeNoise(t=-1.0), "t", "-1.0", "[0.0, inf]"),
        (lambda: Periphery(tile_size=0), "tile_size", "0", ">= 1"),
        (lambda: Periphery(tile_size=(256, 0)), "tile_size", "(256, 0)", ">= 1"),
        (lambda: Periphery(out_bound=0.0), "out_bound", "0.0", "> 0"),
        (lambda: Periphery(out_noise=-0.1), "out_noise", "-0.1", ">= 0"),
        (lambda: bk.ReRamCMONoise(acceptance_range=1.0), "acceptance_range", "1.0", "[0.2, 2.0]"),
    ],
)
def test_bad_parameters_name_the_argument_the_value_and_what_is_allowed(make, argument, value, allowed):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert f"`{argument}`" in message and f"{argument}={value}" in message and allowed in message


def test_a_sweep_to_a_time_before_t0_is_refused(rng):
    net = _mlp(bk.PowerLawDrift(nu=0.05, t=10.0, t0=10.0))
    with pytest.raises(ValueError, match="`t` of PowerLawDrift must be >= t0=10.0"):
        bk.evaluate_drift(net, (np.zeros((4, 32), "float32"), np.zeros(4, "int32")), param="t", values=[10.0, 5.0], progress=False)


def test_a_tile_must_hold_a_kernel_position_of_every_row(rng):
    layer = bk.ReRAMConv2D(4, 5, periphery=Periphery(tile_size=(16, 4)))
    with pytest.raises(ValueError, match="`tile_size` rows \\(16\\) must hold at least one input channel"):
        layer(np.zeros((1, 8, 8, 2), "float32"))


# -- other backends; aihwkit -----------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") == "torch", reason="already on torch")
@pytest.mark.slow
def test_device_physics_on_the_torch_backend():
    env = dict(os.environ, KERAS_BACKEND="torch")
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(TESTS / "test_device_physics.py"),
         "-k", "power_law or zero_weight or read_noise or evaluator or tiling or time_sweep or compensation"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail


@pytest.mark.skipif(
    importlib.util.find_spec("aihwkit") is None, reason="aihwkit not installed (pip install aihwkit==1.1.0 --no-deps)"
)
@pytest.mark.slow
def test_distributions_agree_with_aihwkit():
    env = dict(os.environ, KERAS_BACKEND="torch")
    result = subprocess.run(
        [sys.executable, str(TESTS / "aihwkit_crosscheck.py"), "--tiny"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checks = json.loads(result.stdout.strip().splitlines()[-1])["checks"]
    assert len(checks) > 50
    asserted = [c for c in checks if "remap=False" not in c["name"]]
    worst = max(asserted, key=lambda c: abs(c["z"]))
    # ~100 two-sample z statistics: beyond 4.5 standard errors is a real disagreement.
    assert abs(worst["z"]) < 4.5, worst
