"""Speed of the Monte Carlo drift sweep (issue 3), both sides measured in one run.

Workload (the BayesFT paper's robustness curve): LeNet-5 for 28x28x1 inputs,
2,000 images, 31 sigma values x 20 chips = 620 drifted evaluations.

The machine is shared, so its speed drifts during a run. The sweep is therefore
timed against the clean pass in pairs: for every sigma, its 20 chips on a warm
evaluator, then 20 compiled clean forward passes of the plain Keras LeNet
(`tf.function`, same 2,000 images), so both sides see the same load.

Prints:
- `evaluate_drift` end to end (device copy, tracing, 620 chips) and its
  speed-up vs the paper authors' PyTorch procedure, 36 s on the reference
  machine (target >= 4x);
- the one-off setup (copy + trace) and the paired per-draw times;
- ratio = (setup + sweep) / (620 x clean pass)   (target <= 1.1);
- with --torch: the authors' procedure re-implemented in PyTorch (perturb every
  parameter in place, evaluate, restore), paired the same way on every 5th sigma;
  then the headline of issue 15: the whole curve, ours (`evaluate_drift` end to
  end, a fresh call: device copy, traces, clean pass, 620 chips) against theirs
  (`reference_torch.drift_curve`: their `evaluate_robustness`, the saved state
  loaded before every draw), `--repeats` times in alternating order, and the
  ratio of each pair (target >= 5).

Run: PYTHONPATH=src python benchmarks/bench_drift_sweep.py [--torch] [--repeats 3] [--explore]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow leaves its oneDNN kernels off on CPUs without AVX-512 (this AMD
# EPYC); PyTorch, the reference, uses oneDNN on every x86 CPU. Both sides of
# every ratio below run with the same setting; TF_ENABLE_ONEDNN_OPTS=0 to compare.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import bayesft_keras as bk  # noqa: E402
from bayesft_keras.evaluation import DEFAULT_SIGMAS  # noqa: E402
from bayesft_keras.evaluation import DriftEvaluator  # noqa: E402
from bayesft_keras.evaluation import chip_seed_grid  # noqa: E402

REFERENCE_SECONDS = 36.0  # the authors' PyTorch procedure on the reference 2-core machine
NUM_IMAGES = 2000
CHIPS = 20


def lenet5(noise, dropout=0.2):
    """LeNet-5 of the BayesFT code for 28x28x1, from ReRAM layers (dropout sites as in the paper)."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            bk.ReRAMConv2D(6, 5, activation="relu", noise=noise),
            keras.layers.SpatialDropout2D(dropout),
            keras.layers.MaxPooling2D(2),
            bk.ReRAMConv2D(16, 5, activation="relu", noise=noise),
            keras.layers.SpatialDropout2D(dropout),
            keras.layers.MaxPooling2D(2),
            bk.ReRAMConv2D(120, 4, activation="relu", noise=noise),
            keras.layers.Flatten(),
            keras.layers.Dropout(dropout),
            bk.ReRAMDense(84, activation="relu", noise=noise),
            keras.layers.Dropout(dropout),
            bk.ReRAMDense(10, noise=noise),
        ],
        name="lenet5",
    )


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clean_pass_timer(model, x):
    """One compiled clean forward pass of the plain Keras model over all of ``x``."""
    import tensorflow as tf

    plain = bk.to_keras(model)
    forward = tf.function(lambda images: plain(images, training=False))
    images = tf.constant(x)

    def run():
        forward(images).numpy()

    return run, plain


class TorchReference:
    """The authors' procedure in PyTorch: perturb every parameter in place, test, restore."""

    def __init__(self, x, y, batch_size):
        import torch

        self.torch = torch
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.Dropout2d(0.2), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.Dropout2d(0.2), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 120, 4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Dropout(0.2),
            torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(84, 10),
        ).eval()
        images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(images, torch.from_numpy(y.astype("int64"))), batch_size=batch_size
        )

    def draws(self, sigma, count):
        torch = self.torch
        for _ in range(count):
            saved = {k: v.clone() for k, v in self.model.state_dict().items()}
            with torch.no_grad():
                for p in self.model.parameters():
                    p.mul_(torch.exp(torch.randn_like(p) * sigma))
                correct = 0
                for images, labels in self.loader:
                    correct += (self.model(images).argmax(1) == labels).sum().item()
            self.model.load_state_dict(saved)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def whole_curves(model, x, y, sigmas, repeats):
    """The drift curve end to end, ours against the authors' procedure, in alternating order."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference_torch as ref

    theirs_model = ref.LeNet_Bayes(0.0, 0.0, 0.0, 0.0, 0.0)
    ours_s, theirs_s = [], []

    def ours():
        bk.evaluate_drift(model, (x, y), sigmas=sigmas, chips=CHIPS, seed=0, progress=False)

    def theirs():
        ref.drift_curve(theirs_model, x, y, sigmas, num=CHIPS, seed=0)

    for r in range(repeats):
        pair = (("ours", ours), ("theirs", theirs)) if r % 2 == 0 else (("theirs", theirs), ("ours", ours))
        times = {}
        for name, fn in pair:
            times[name] = timed(fn)
        ours_s.append(times["ours"])
        theirs_s.append(times["theirs"])
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"curve {r + 1}/{repeats}: ours {times['ours']:.2f} s, theirs {times['theirs']:.2f} s, "
              f"ratio {times['theirs'] / times['ours']:.2f}x (load average {load})", flush=True)
    ratios = [t / o for o, t in zip(ours_s, theirs_s)]
    print(f"whole curve ({len(sigmas)} sigmas x {CHIPS} chips, {len(x)} images; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads): ours median {statistics.median(ours_s):.2f} s "
          f"({min(ours_s):.2f}-{max(ours_s):.2f}), theirs median {statistics.median(theirs_s):.2f} s "
          f"({min(theirs_s):.2f}-{max(theirs_s):.2f}); ratio median {statistics.median(ratios):.2f}x "
          f"({min(ratios):.2f}-{max(ratios):.2f}; ratio of medians "
          f"{statistics.median(theirs_s) / statistics.median(ours_s):.2f}x; target >= 5)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch", action="store_true", help="also time the reference procedure in PyTorch")
    parser.add_argument("--torch-batch", type=int, default=1000, help="test-loader batch of the reference")
    parser.add_argument("--explore", action="store_true", help="also time chips_per_pass / XLA / batch variants")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end curves per side (with --torch)")
    parser.add_argument("--skip-paired", action="store_true", help="only the end-to-end curves (with --torch)")
    args = parser.parse_args()

    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((NUM_IMAGES, 28, 28, 1), dtype="float32")
    y = rng.integers(0, 10, NUM_IMAGES).astype("int32")
    model = lenet5(bk.LogNormalDrift(0.0))
    sigmas = list(DEFAULT_SIGMAS)
    draws = len(sigmas) * CHIPS
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"TF {tf.__version__} (TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}), keras "
          f"{keras.__version__}, {os.cpu_count()} CPUs, load average {load}")
    print(f"workload: LeNet-5 28x28x1, {NUM_IMAGES} images, {len(sigmas)} sigmas x {CHIPS} chips = {draws} draws")

    if args.torch:
        whole_curves(model, x, y, sigmas, args.repeats)
        if args.skip_paired:
            return
    clean_run, plain = clean_pass_timer(model, x)
    clean_run()
    predict = median_time(lambda: plain.predict(x, verbose=0, batch_size=NUM_IMAGES), 5)

    # 1. The real call, end to end.
    report = None

    def call():
        nonlocal report
        report = bk.evaluate_drift(model, (x, y), chips=CHIPS, seed=0, progress=False)

    total = timed(call)

    # 2. One-off setup: a call that scores a single chip, less its two passes (clean, chip).
    small = timed(lambda: bk.evaluate_drift(model, (x, y), sigmas=[0.5], chips=1, progress=False))
    evaluator = DriftEvaluator(model)
    evaluator.set_data(x, y)

    # 3. Paired steady-state sweep vs clean passes (and the PyTorch procedure).
    reference = TorchReference(x, y, args.torch_batch) if args.torch else None
    grid = chip_seed_grid(0, len(sigmas), CHIPS)
    evaluator.sweep("sigma", [0.5], grid[:1])  # trace
    sweep_times, clean_times, paired_sweep, torch_times = [], [], [], []
    rows = []
    for v, sigma in enumerate(sigmas):
        seconds = timed(lambda: rows.append(evaluator.sweep("sigma", [sigma], grid[v : v + 1])[0]))
        sweep_times.append(seconds)
        clean_times.append(timed(lambda: [clean_run() for _ in range(CHIPS)]))
        if reference is not None and v % 5 == 0:
            torch_times.append(timed(lambda: reference.draws(sigma, CHIPS)))
            paired_sweep.append(seconds)
    assert np.array_equal(np.stack(rows), report.chip_metrics), "the warm sweep must reproduce the report"

    sweep, clean = sum(sweep_times), sum(clean_times)
    clean_pass = clean / draws
    setup = max(small - 2 * clean_pass, 0.0)
    ratio = (setup + sweep) / clean
    print(f"evaluate_drift end to end: {total:.2f} s ({total / draws * 1e3:.1f} ms per draw); "
          f"speed-up vs the authors' {REFERENCE_SECONDS:.0f} s: {REFERENCE_SECONDS / total:.2f}x (target >= 4)")
    print(f"paired: sweep {sweep:.2f} s ({sweep / draws * 1e3:.1f} ms per draw, {evaluator._parallel} chips at once"
          f"{', stacked' if getattr(evaluator, 'stacked', False) else ''}), "
          f"clean passes {clean:.2f} s ({clean_pass * 1e3:.1f} ms per pass); model.predict {predict * 1e3:.1f} ms")
    print(f"setup (device copy + traces): {setup:.2f} s")
    print(f"ratio sweep / ({draws} x clean pass) = {sweep / clean:.3f}; with setup = {ratio:.3f} (target <= 1.1)")
    if reference is not None:
        import torch

        speedup = sum(torch_times) / sum(paired_sweep)
        per_draw = sum(torch_times) / (len(torch_times) * CHIPS)
        print(f"PyTorch {torch.__version__} reference procedure (batch {args.torch_batch}, "
              f"{torch.get_num_threads()} threads): {per_draw * 1e3:.1f} ms per draw, "
              f"{speedup:.2f}x the paired sweep time")

    if args.explore:
        sub = grid[:2, :8]
        variants = [dict(chips_per_pass=k) for k in (1, 2, 4, 8)]
        variants += [dict(chips_per_pass=k, jit_compile=True) for k in (1, 4)]
        variants += [dict(chips_per_pass=4, batch_size=b) for b in (500, 1000)]
        for options in variants:
            ev = DriftEvaluator(model, **options)
            ev.set_data(x, y)
            ev.sweep("sigma", [0.5], sub[:1])
            seconds = timed(lambda: ev.sweep("sigma", [0.5, 1.5], sub))
            clean_now = timed(lambda: [clean_run() for _ in range(sub.size)])
            print(f"  {options}: {seconds / sub.size * 1e3:.1f} ms per chip, "
                  f"{seconds / clean_now:.3f} x the clean pass timed right after")


if __name__ == "__main__":
    main()
