"""GPU figures for benchmarks/RESULTS.md: the LeNet-5 drift sweep and VGG11 training speed.

Backend-neutral (KERAS_BACKEND=jax, torch or tensorflow); the same script gives
the CPU figures on a CPU machine. Three measurements, printed as a table and
written as JSON:

1. The BayesFT robustness curve of `benchmarks/bench_drift_sweep.py`: LeNet-5
   for 28x28x1, 2,000 images, 31 sigmas x 20 chips = 620 drifted evaluations.
   "total" is one `evaluate_drift` call (device copy, compilation, 620 chips);
   "steady" the same sweep on a warm evaluator; "clean pass" one compiled
   forward pass of the plain model over the 2,000 images (predict_on_batch).
2. VGG11 training throughput with the tuner's recipe: `BayesFTHyperModel`
   ("vgg11", CIFAR-size 32x32x3 inputs, paper width, dropout at the centre of
   the search space, Adam one-cycle, batch 128), `model.fit` on synthetic data.
   The first epoch (compilation) is reported apart; images/s is over the others.
3. The drift objective of one VGG11 trial: 20 chips at sigma=0.8 on the
   validation images (5,000 for CIFAR-10's 10 % split).

    KERAS_BACKEND=jax python benchmarks/gpu/gpu_figures.py --out figures.json
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for the shared LeNet-5

import bayesft_keras as bk  # noqa: E402
from bayesft_keras.evaluation import DEFAULT_SIGMAS  # noqa: E402
from bayesft_keras.evaluation import DriftEvaluator  # noqa: E402
from bayesft_keras.evaluation import chip_seed_grid  # noqa: E402
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel  # noqa: E402
from bench_drift_sweep import lenet5  # noqa: E402

SWEEP_IMAGES = 2000
SWEEP_CHIPS = 20


def machine():
    info = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        info["framework"] = f"jax {jax.__version__}"
        info["devices"] = [str(d) for d in jax.devices()]
    elif backend == "torch":
        import torch

        info["framework"] = f"torch {torch.__version__}"
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"]
    else:
        import tensorflow as tf

        info["framework"] = f"tensorflow {tf.__version__}"
        info["devices"] = [d.name for d in tf.config.list_logical_devices()]
    try:
        info["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = None
    return info


def synchronize():
    """Waits for queued device work (JAX and torch run asynchronously)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    elif backend == "jax":
        import jax

        for device in jax.devices():
            jax.device_put(0.0, device).block_until_ready()


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def drift_sweep(repeats):
    rng = np.random.default_rng(0)
    x = rng.random((SWEEP_IMAGES, 28, 28, 1), dtype="float32")
    y = rng.integers(0, 10, SWEEP_IMAGES).astype("int32")
    model = lenet5(bk.LogNormalDrift(0.0))
    draws = len(DEFAULT_SIGMAS) * SWEEP_CHIPS

    plain = bk.to_keras(model)
    # Own buffers: on JAX, to_keras's copy shares the model's arrays, which
    # predict donates (reported; numpy copies keep the two apart).
    for variable in plain.variables:
        variable.assign(np.array(keras.ops.convert_to_numpy(variable)))
    clean = median_time(lambda: keras.ops.convert_to_numpy(plain.predict_on_batch(x)), repeats)

    start = time.perf_counter()
    report = bk.evaluate_drift(model, (x, y), chips=SWEEP_CHIPS, seed=0, progress=False)
    total = time.perf_counter() - start

    evaluator = DriftEvaluator(model)
    evaluator.set_data(x, y)
    grid = chip_seed_grid(0, len(DEFAULT_SIGMAS), SWEEP_CHIPS)
    evaluator.sweep("sigma", [0.5], grid[:1])
    start = time.perf_counter()
    steady = evaluator.sweep("sigma", DEFAULT_SIGMAS, grid)
    steady_s = time.perf_counter() - start
    same = bool(np.array_equal(steady, report.chip_metrics))
    return {
        "workload": f"LeNet-5 28x28x1, {SWEEP_IMAGES} images, {len(DEFAULT_SIGMAS)} sigmas x {SWEEP_CHIPS} chips",
        "draws": draws,
        "sweep_total_s": total,
        "sweep_steady_s": steady_s,
        "ms_per_draw_steady": steady_s / draws * 1e3,
        "clean_pass_ms": clean * 1e3,
        "ratio_total_to_clean": total / (draws * clean),
        "ratio_steady_to_clean": steady_s / (draws * clean),
        "steady_reproduces_report": same,
    }


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        synchronize()
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        synchronize()
        self.seconds.append(time.perf_counter() - self._start)


def vgg11_training(images, epochs, batch_size, width, val_images):
    import keras_tuner

    rng = np.random.default_rng(0)
    x = rng.random((images, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, images).astype("int32")
    hypermodel = BayesFTHyperModel(
        "vgg11", input_shape=(32, 32, 3), num_classes=10, noise=bk.LogNormalDrift(0.8),
        epochs=epochs, batch_size=batch_size, width=width,
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    for param in hp.space:  # the centre of the ranges: the search's first, hand-picked trial
        hp.values[param.name] = round((param.min_value + param.max_value) / 2, 6)
    start = time.perf_counter()
    model = hypermodel.build(hp)
    built = time.perf_counter() - start
    timer = EpochTimer()
    hypermodel.fit(hp, model, x, y, verbose=0, callbacks=[timer])
    steady = timer.seconds[1:] or timer.seconds
    seconds_per_epoch = statistics.median(steady)
    result = {
        "model": f"VGG11 width {width}, {model.count_params():,} parameters, dropout {dict(hp.values)}",
        "train_images": images,
        "batch_size": batch_size,
        "epochs": epochs,
        "build_s": built,
        "first_epoch_s": timer.seconds[0],
        "epoch_s": seconds_per_epoch,
        "images_per_s": images / seconds_per_epoch,
    }
    # The trial's objective: 20 chips at sigma=0.8 on the validation images.
    xv = rng.random((val_images, 32, 32, 3), dtype="float32")
    yv = rng.integers(0, 10, val_images).astype("int32")
    # As in a trial: a fresh evaluator (device copy, compilation, 20 chips).
    start = time.perf_counter()
    bk.evaluate_drift(model, (xv, yv), sigmas=[0.8], chips=20, seed=0, progress=False)
    result["objective_s"] = time.perf_counter() - start
    result["objective_images"] = val_images
    # A paper-scale trial: 20 epochs over CIFAR-10's 45,000 training images, then the objective.
    result["paper_trial_estimate_s"] = 20 * 45000 / result["images_per_s"] + result["objective_s"]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-vgg", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--vgg-images", type=int, default=12800)
    parser.add_argument("--vgg-epochs", type=int, default=3)
    parser.add_argument("--vgg-width", type=float, default=1.0)
    parser.add_argument("--val-images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    figures = {"machine": machine()}
    print(json.dumps(figures["machine"]), flush=True)
    if not args.skip_sweep:
        figures["drift_sweep"] = drift_sweep(args.repeats)
        print(json.dumps(figures["drift_sweep"]), flush=True)
    if not args.skip_vgg:
        figures["vgg11_training"] = vgg11_training(
            args.vgg_images, args.vgg_epochs, args.batch_size, args.vgg_width, args.val_images
        )
        print(json.dumps(figures["vgg11_training"]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))

    backend = figures["machine"]["backend"]
    print(f"\n{backend} on {figures['machine'].get('gpu') or 'CPU'}")
    if "drift_sweep" in figures:
        s = figures["drift_sweep"]
        print(f"  drift sweep (620 draws): total {s['sweep_total_s']:.2f} s, steady {s['sweep_steady_s']:.2f} s "
              f"({s['ms_per_draw_steady']:.2f} ms/draw), clean pass {s['clean_pass_ms']:.2f} ms, "
              f"ratio steady/clean {s['ratio_steady_to_clean']:.2f}")
    if "vgg11_training" in figures:
        v = figures["vgg11_training"]
        print(f"  VGG11 training: {v['images_per_s']:.0f} images/s (batch {v['batch_size']}; first epoch "
              f"{v['first_epoch_s']:.1f} s); objective 20 chips x {v['objective_images']} images: "
              f"{v['objective_s']:.2f} s; paper-scale trial ~{v['paper_trial_estimate_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
