"""Speed of the Monte Carlo drift sweep (issue 3), both sides measured in one run.

Workload (the BayesFT paper's robustness curve): LeNet-5 for 28x28x1 inputs,
2,000 images, 31 sigma values x 20 chips = 620 drifted evaluations.

Prints:
- the sweep time of `evaluate_drift` (everything: device copy, tracing, the
  620 chips) and its steady-state part (the 620 chips on a warm evaluator);
- the time of one compiled clean forward pass of the same LeNet (plain Keras,
  `tf.function`) over the same 2,000 images, and of `model.predict`;
- ratio = sweep / (620 x clean pass)   (target <= 1.1)
- speed-up vs the paper authors' PyTorch procedure: 36 s on the reference
  machine (target >= 4), and, with --torch, vs that procedure re-implemented
  here (perturb every parameter in place, evaluate, restore) timed in this run.

Run: PYTHONPATH=src python benchmarks/bench_drift_sweep.py [--explore] [--torch]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


def torch_reference(model, x, y, sigmas, chips, batch_size):
    """The authors' procedure in PyTorch: perturb every parameter in place, test, restore."""
    import torch

    torch_model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.Dropout2d(0.2), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.Dropout2d(0.2), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 120, 4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Dropout(0.2),
        torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(84, 10),
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(
            torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y.astype("int64"))
        ),
        batch_size=batch_size,
    )
    torch_model.eval()
    start = time.perf_counter()
    for sigma in sigmas:
        for _ in range(chips):
            saved = {k: v.clone() for k, v in torch_model.state_dict().items()}
            with torch.no_grad():
                for p in torch_model.parameters():
                    p.mul_(torch.exp(torch.randn_like(p) * sigma))
                correct = 0
                for images, labels in loader:
                    correct += (torch_model(images).argmax(1) == labels).sum().item()
            torch_model.load_state_dict(saved)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--explore", action="store_true", help="also time chips_per_pass / XLA variants")
    parser.add_argument("--torch", action="store_true", help="also time the reference procedure in PyTorch")
    parser.add_argument("--torch-batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((NUM_IMAGES, 28, 28, 1), dtype="float32")
    y = rng.integers(0, 10, NUM_IMAGES).astype("int32")
    model = lenet5(bk.LogNormalDrift(0.0))
    draws = len(DEFAULT_SIGMAS) * CHIPS
    print(f"TF {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} CPUs, load avg {os.getloadavg()}")
    print(f"workload: LeNet-5 28x28x1, {NUM_IMAGES} images, {len(DEFAULT_SIGMAS)} sigmas x {CHIPS} chips = {draws} draws")

    clean_run, plain = clean_pass_timer(model, x)
    clean_before = median_time(clean_run, args.repeats)
    predict_time = median_time(lambda: plain.predict(x, verbose=0, batch_size=NUM_IMAGES), 5)

    start = time.perf_counter()
    report = bk.evaluate_drift(model, (x, y), chips=CHIPS, seed=0, progress=False)
    sweep_total = time.perf_counter() - start

    # Steady state: the same sweep again on a warm evaluator (no copy, no trace).
    evaluator = DriftEvaluator(model)
    evaluator.set_data(x, y)
    grid = chip_seed_grid(0, len(DEFAULT_SIGMAS), CHIPS)
    evaluator.sweep("sigma", [0.5], grid[:1])
    start = time.perf_counter()
    steady = evaluator.sweep("sigma", DEFAULT_SIGMAS, grid)
    sweep_steady = time.perf_counter() - start
    assert np.array_equal(steady, report.chip_metrics), "warm sweep must reproduce the report"

    clean_after = median_time(clean_run, args.repeats)
    clean = statistics.median([clean_before, clean_after])
    print(f"clean compiled forward pass: {clean * 1e3:.1f} ms (before {clean_before * 1e3:.1f}, after "
          f"{clean_after * 1e3:.1f}); model.predict: {predict_time * 1e3:.1f} ms")
    print(f"evaluate_drift total: {sweep_total:.2f} s ({sweep_total / draws * 1e3:.1f} ms per draw)")
    print(f"steady-state sweep:   {sweep_steady:.2f} s ({sweep_steady / draws * 1e3:.1f} ms per draw)")
    print(f"ratio total  / ({draws} x clean pass) = {sweep_total / (draws * clean):.3f}   (target <= 1.1)")
    print(f"ratio steady / ({draws} x clean pass) = {sweep_steady / (draws * clean):.3f}")
    print(f"speed-up vs the authors' 36 s: {REFERENCE_SECONDS / sweep_total:.2f}x   (target >= 4)")

    if args.explore:
        sub = grid[:2]
        for jit in (False, True):
            for per_pass in (1, 2, 4):
                ev = DriftEvaluator(model, chips_per_pass=per_pass, jit_compile=jit)
                ev.set_data(x, y)
                ev.sweep("sigma", [0.5], sub[:1, :per_pass])
                seconds = median_time(lambda: ev.sweep("sigma", [0.5, 1.5], sub), 3)
                print(f"  jit_compile={jit!s:5} chips_per_pass={per_pass}: "
                      f"{seconds / sub.size * 1e3:.1f} ms per chip")
        for batch in (250, 500, 1000):
            ev = DriftEvaluator(model, batch_size=batch)
            ev.set_data(x, y)
            ev.sweep("sigma", [0.5], sub[:1, :1])
            seconds = median_time(lambda: ev.sweep("sigma", [0.5, 1.5], sub), 3)
            print(f"  batch_size={batch}: {seconds / sub.size * 1e3:.1f} ms per chip")
        print(f"  (clean pass now: {median_time(clean_run, args.repeats) * 1e3:.1f} ms)")

    if args.torch:
        import torch

        sigmas = DEFAULT_SIGMAS[::10]  # 4 values x 20 chips, extrapolated to the full sweep
        seconds = torch_reference(model, x, y, sigmas, CHIPS, args.torch_batch)
        per_draw = seconds / (len(sigmas) * CHIPS)
        print(f"PyTorch {torch.__version__} reference procedure (batch {args.torch_batch}, {torch.get_num_threads()} "
              f"threads): {per_draw * 1e3:.1f} ms per draw -> {per_draw * draws:.1f} s for {draws} draws; "
              f"speed-up {per_draw * draws / sweep_total:.2f}x")


if __name__ == "__main__":
    main()
