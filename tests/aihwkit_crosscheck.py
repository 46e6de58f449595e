"""Cross-check of the device physics against IBM aihwkit (run with KERAS_BACKEND=torch).

For the same target conductances / weights and the same device model, the
distributions of programmed conductances, drift exponents, conductances at the
time of inference and layer outputs of bayesft-keras and of aihwkit 1.1.0
(pure-torch tile, `TorchInferenceRPUConfig`) must agree in mean and spread.
Every comparison is a two-sample z statistic: the difference divided by its
standard error, which follows from the sample size (for a spread, from the
sample's fourth moment). Prints one JSON object:

    {"checks": [{"name", "stat", "ours", "aihwkit", "z"}, ...], "seconds": ...}

Usage: KERAS_BACKEND=torch PYTHONPATH=src python tests/aihwkit_crosscheck.py [--small | --tiny]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import keras  # noqa: E402
from keras import ops  # noqa: E402

import bayesft_keras as bk  # noqa: E402
from bayesft_keras.device.seeds import as_stream  # noqa: E402

from aihwkit.inference import GlobalDriftCompensation  # noqa: E402
from aihwkit.inference import PCMLikeNoiseModel  # noqa: E402
from aihwkit.inference import ReRamCMONoiseModel  # noqa: E402
from aihwkit.nn import AnalogLinear  # noqa: E402
from aihwkit.simulator.configs import TorchInferenceRPUConfig  # noqa: E402
from aihwkit.simulator.parameters.enums import BoundManagementType  # noqa: E402

TIMES = (1.0, 3600.0, 86400.0, 365.0 * 86400.0)  # 1 s, 1 h, 1 day, 1 year
CHECKS = []


def _moments(x):
    x = np.asarray(x, dtype="float64").reshape(-1)
    n = len(x)
    mean, std = x.mean(), x.std(ddof=1)
    m4 = np.mean((x - mean) ** 4)
    se_mean = std / np.sqrt(n)
    # SE of the std from the SE of the variance, sqrt((m4 - s^4) / n), by the delta method.
    se_std = np.sqrt(max(m4 - std**4, 0.0) / n) / (2 * max(std, 1e-30))
    return mean, std, se_mean, se_std


def compare(name, ours, theirs):
    """Records the z statistics of the means and of the spreads of two samples."""
    a, b = _moments(ours), _moments(theirs)
    for stat, i, j in (("mean", 0, 2), ("std", 1, 3)):
        se = np.hypot(a[j], b[j])
        z = 0.0 if se == 0 and a[i] == b[i] else (a[i] - b[i]) / max(se, 1e-30)
        CHECKS.append({"name": name, "stat": stat, "ours": float(a[i]), "aihwkit": float(b[i]), "z": float(z)})


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


# -- conductances ----------------------------------------------------------------


def check_conductances(n, tiny=False):
    models = [
        (
            "pcm",
            bk.PCMLikeNoise(),
            PCMLikeNoiseModel(g_max=25.0),
            (0.5, 2.0, 5.0, 10.0, 20.0, 25.0),
        ),
        ("reram-cmo", bk.ReRamCMONoise(), ReRamCMONoiseModel(), (9.0, 20.0, 40.0, 60.0, 88.2)),
    ]
    times = TIMES[::2] if tiny else TIMES
    for label, ours, theirs, levels in models:
        for level in levels[::2] if tiny else levels:
            g = torch.full((n,), float(level))
            stream = as_stream(int(level * 1000))
            params = [1.0, 1.0, 1.0, 0.0]
            g_prog = ours.program(g, stream, params)
            theirs_prog = theirs.apply_programming_noise_to_conductance(g.clone())
            compare(f"{label} programmed G at {level} uS", _np(g_prog), theirs_prog.numpy())
            if label == "pcm":
                nu = ours.drift_exponents(g, as_stream(7), params)
                compare(f"{label} drift exponent at {level} uS", _np(nu), theirs.generate_drift_coefficients(g).numpy())
            for t in times:
                at_t = ours.drift(g_prog, g, as_stream(int(t) % 100003 + 11), params[:3] + [t])
                nu_theirs = theirs.generate_drift_coefficients(g.clone())
                theirs_t = theirs.apply_drift_noise_to_conductance(theirs_prog.clone(), nu_theirs, t)
                compare(f"{label} G at t={t:g} s, {level} uS", _np(at_t), theirs_t.numpy())


# -- layer outputs ------------------------------------------------------------------


def _aihwkit_layer(weights, noise_model, perfect=True, compensation=False, io=None, tiles=None):
    config = TorchInferenceRPUConfig()
    config.noise_model = noise_model
    config.drift_compensation = GlobalDriftCompensation() if compensation else None
    config.forward.is_perfect = perfect
    config.mapping.weight_scaling_omega = 1.0
    if tiles is not None:
        config.mapping.max_input_size, config.mapping.max_output_size = tiles
    if io is not None:
        config.forward.out_noise = io["out_noise"]
        config.forward.out_bound = io["out_bound"]
        config.forward.inp_res = -1
        config.forward.out_res = -1
        config.forward.bound_management = BoundManagementType.NONE
    out_size, in_size = weights.shape
    layer = AnalogLinear(in_size, out_size, bias=False, rpu_config=config)
    layer.set_weights(torch.tensor(weights, dtype=torch.float32))
    layer.eval()
    return layer


def _our_layer(weights, noise, periphery=None):
    model = keras.Sequential(
        [keras.Input((weights.shape[1],)), bk.ReRAMDense(weights.shape[0], use_bias=False, noise=noise, periphery=periphery)]
    )
    model.layers[0].kernel.assign(weights.T.astype("float32"))
    return model


def _chip_stats(errors):
    """Per chip: the mean and the RMS of the output errors (independent across chips)."""
    errors = np.asarray(errors)
    return errors.mean(axis=(1, 2)), np.sqrt((errors**2).mean(axis=(1, 2)))


def check_layers(chips, tiny=False):
    rng = np.random.default_rng(0)
    weights = (rng.normal(size=(64, 128)) * 0.1).astype("float32")
    x = rng.normal(size=(32, 128)).astype("float32")
    ideal = x @ weights.T
    xt = torch.tensor(x)

    # remap=True: aihwkit's pipeline (programmed weights mapped again before
    # drift); remap=False: ours by default (every device drifts on its own).
    cases = [
        ("pcm", bk.PCMLikeNoise(remap=True), lambda: PCMLikeNoiseModel(g_max=25.0), False, TIMES),
        ("pcm, global drift compensation", bk.PCMLikeNoise(remap=True), lambda: PCMLikeNoiseModel(g_max=25.0), True, TIMES[2:]),
        ("reram-cmo", bk.ReRamCMONoise(remap=True), lambda: ReRamCMONoiseModel(), False, (1.0, 86400.0)),
        ("pcm (remap=False)", bk.PCMLikeNoise(), lambda: PCMLikeNoiseModel(g_max=25.0), False, TIMES[2:3]),
    ]
    for label, noise, make_theirs, compensation, times in cases:
        times = times[-1:] if tiny else times
        periphery = bk.Periphery(drift_compensation=True) if compensation else None
        model = _our_layer(weights, noise, periphery)
        theirs = _aihwkit_layer(weights, make_theirs(), compensation=compensation)
        ours_e = {t: [] for t in times}
        theirs_e = {t: [] for t in times}
        for c in range(chips):
            bk.resample(model, c)
            theirs.program_analog_weights()
            for t in times:
                bk.set_noise_params(model, t=t)
                ours_e[t].append(_np(model(x)) - ideal)
                theirs.drift_analog_weights(t)
                with torch.no_grad():
                    theirs_e[t].append(theirs(xt).numpy() - ideal)
        for t in times:
            (m_o, r_o), (m_t, r_t) = _chip_stats(ours_e[t]), _chip_stats(theirs_e[t])
            compare(f"layer {label} t={t:g} s: chip mean error", m_o, m_t)
            compare(f"layer {label} t={t:g} s: chip RMS error", r_o, r_t)

    # Periphery only: ideal devices, 2 x 2 tiles, ADC noise and a bound that clips.
    io = {"out_noise": 0.04, "out_bound": 1.0}
    model = _our_layer(
        weights,
        bk.PCMLikeNoise(0.0, 0.0, 0.0),
        bk.Periphery(tile_size=(64, 32), out_noise=io["out_noise"], out_bound=io["out_bound"]),
    )
    theirs = _aihwkit_layer(
        weights,
        PCMLikeNoiseModel(g_max=25.0, prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0),
        perfect=False,
        io=io,
        tiles=(64, 32),
    )
    ours_y, theirs_y = [], []
    for c in range(chips):
        bk.resample(model, c)
        ours_y.append(_np(model(x)))
        with torch.no_grad():
            theirs_y.append(theirs(xt).numpy())
    ours_y, theirs_y = np.asarray(ours_y), np.asarray(theirs_y)
    label = "layer ADC (2x2 tiles, out_noise 0.04, out_bound 1)"
    compare(f"{label}: chip mean error", *(_chip_stats(y - ideal)[0] for y in (ours_y, theirs_y)))
    compare(f"{label}: chip RMS error", *(_chip_stats(y - ideal)[1] for y in (ours_y, theirs_y)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="fewer samples")
    parser.add_argument("--tiny", action="store_true", help="fewer samples and cases (the test)")
    args = parser.parse_args()
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    if args.tiny:
        check_conductances(n=10_000, tiny=True)
        check_layers(chips=40, tiny=True)
    else:
        check_conductances(n=20_000 if args.small else 100_000)
        check_layers(chips=60 if args.small else 200)
    print(json.dumps({"checks": CHECKS, "seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
