"""LeNet-5 drift sweep on a PCM-like device: bayesft-keras vs IBM aihwkit, the same work in one run.

Work (both sides): LeNet-5 for 28x28x1 (the BayesFT code's), trained briefly here
on mnist5k, then evaluated on 2,000 held-out images at 31 times of inference
(log-spaced from 1 s to 1 year) x 20 chips = 620 chip evaluations. The device
is aihwkit's PCMLikeNoiseModel (ours: `PCMLikeNoise` with ``remap=True``, the
same pipeline) on differential pairs in [0, 25] uS; the periphery is ideal
(aihwkit ``forward.is_perfect = True``, no drift compensation), so both sides
do the device model and the matrix products only. Weights are copied from the
Keras model into the PyTorch one.

- ours: ``evaluate_drift(model, data, param="t", values=times, chips=20)`` on
  the TensorFlow backend: every chip is programmed once and read at all 31
  times; noise sampled inside one compiled pass.
- aihwkit 1.1.0 (pure-torch tile, `TorchInferenceRPUConfig`): for each chip,
  ``program_analog_weights()`` once, then ``drift_analog_weights(t)`` and a
  forward pass over the 2,000 images for each time.

Prints both wall times (end to end, including our device copy and tracing),
the time per chip evaluation, and the mean accuracy at 1 s, 1 day and 1 year
on both sides (they simulate the same device, so they should agree within the
chip-to-chip spread). The machine is shared: the load average is printed.

Run: PYTHONPATH=src python benchmarks/bench_aihwkit_sweep.py [--quick] [--torch-threads N]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import bayesft_keras as bk  # noqa: E402
from bayesft_keras.data import load  # noqa: E402

NUM_IMAGES = 2000


def keras_lenet5(noise=None):
    # Digital biases, as aihwkit's default `mapping.digital_bias=True` (the paper drifts them: noisy_bias=True).
    device = dict(noise=noise, noisy_bias=False)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            bk.ReRAMConv2D(6, 5, activation="relu", **device),
            keras.layers.MaxPooling2D(2),
            bk.ReRAMConv2D(16, 5, activation="relu", **device),
            keras.layers.MaxPooling2D(2),
            bk.ReRAMConv2D(120, 4, activation="relu", **device),
            keras.layers.Flatten(),
            bk.ReRAMDense(84, activation="relu", **device),
            bk.ReRAMDense(10, **device),
        ],
        name="lenet5",
    )


def torch_lenet5(keras_model):
    """The same network in PyTorch, with the Keras weights (NCHW)."""
    import torch
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 4), nn.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    ours = [l for l in keras_model.layers if l.weights]
    theirs = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for k, t in zip(ours, theirs):
            kernel, bias = (np.asarray(v) for v in k.get_weights())
            kernel = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
            t.weight.copy_(torch.tensor(kernel))
            t.bias.copy_(torch.tensor(bias))
    return net


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 times x 2 chips (a smoke run)")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--times", type=str, default=None, help="comma-separated times instead of the 31 (checks)")
    args = parser.parse_args()
    points, chips = (3, 2) if args.quick else (31, 20)
    times = np.round(np.logspace(0.0, np.log10(365 * 86400.0), points), 6).tolist()
    if args.times:
        times = [float(t) for t in args.times.split(",")]
        points = len(times)

    import torch

    torch.set_num_threads(args.torch_threads)
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)
    ds = load("mnist5k", seed=0, test_fraction=0.4)
    x, y = ds.x_test[:NUM_IMAGES], ds.y_test[:NUM_IMAGES]
    model = keras_lenet5()
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(ds.x_train, ds.y_train, epochs=args.epochs, batch_size=64, verbose=0)
    clean = model.evaluate(x, y, verbose=0)[1]
    print(f"LeNet-5 on mnist5k: clean accuracy {clean:.4f} on {len(x)} images; load average {os.getloadavg()}")
    print(f"work: {points} times (1 s .. 1 year) x {chips} chips = {points * chips} chip evaluations")

    # -- bayesft-keras ------------------------------------------------------------
    start = time.perf_counter()
    report = bk.evaluate_drift(
        model, (x, y), noise=bk.PCMLikeNoise(remap=True), param="t", values=times, chips=chips, progress=False
    )
    ours_seconds = time.perf_counter() - start
    ours_mean = report.mean()

    # -- aihwkit --------------------------------------------------------------------
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    config = TorchInferenceRPUConfig()
    config.noise_model = PCMLikeNoiseModel(g_max=25.0)
    config.drift_compensation = None
    config.forward.is_perfect = True
    config.mapping.weight_scaling_omega = 1.0
    start = time.perf_counter()
    analog = convert_to_analog(torch_lenet5(model), config)
    analog.eval()
    xt = torch.tensor(x.transpose(0, 3, 1, 2))
    yt = torch.tensor(y)
    accuracy = np.zeros((points, chips))
    with torch.no_grad():
        for c in range(chips):
            analog.program_analog_weights()
            for i, t in enumerate(times):
                analog.drift_analog_weights(t)
                accuracy[i, c] = (analog(xt).argmax(1) == yt).float().mean().item()
    theirs_seconds = time.perf_counter() - start
    theirs_mean = accuracy.mean(axis=1)

    n = points * chips
    print(f"{'':28s}{'bayesft-keras (TF)':>20s}{'aihwkit 1.1.0 (torch)':>24s}")
    print(f"{'wall time, end to end (s)':28s}{ours_seconds:20.1f}{theirs_seconds:24.1f}")
    print(f"{'per chip evaluation (ms)':28s}{1000 * ours_seconds / n:20.1f}{1000 * theirs_seconds / n:24.1f}")
    print(f"speed-up: {theirs_seconds / ours_seconds:.1f}x; load average after: {os.getloadavg()}")
    for label, t in (("1 s", 1.0), ("1 day", 86400.0), ("1 year", 365 * 86400.0)):
        i = int(np.argmin(np.abs(np.log(times) - np.log(t))))
        if abs(np.log(times[i] / t)) > np.log(3.0):
            continue
        spread = np.hypot(report.std()[i], accuracy[i].std()) / np.sqrt(chips)
        print(
            f"mean accuracy at t={times[i]:.3g} s ({label}): ours {ours_mean[i]:.4f}, aihwkit {theirs_mean[i]:.4f} "
            f"(difference {ours_mean[i] - theirs_mean[i]:+.4f}, standard error {spread:.4f})"
        )


if __name__ == "__main__":
    main()
