"""Per-trial cost of the BayesFT search: training vs drift scoring, logging and checkpointing.

Part 1 runs trials of the default (quick) preset and prints each phase's share:
the target is overhead beyond training <= 25 % of a trial.

Part 2 runs one trial of the reference workload of the paper authors' PyTorch
procedure: LeNet-5, 8,000 MNIST-size training images (synthetic), batch 256,
20 epochs, then 30 drift draws at sigma=1.5 on 2,000 images. On a 2-core CPU
their code takes about 9.3 s for it; ours should take no longer.

    python benchmarks/bench_tune_trial.py [--trials 3]
"""

import argparse
import os
import platform
import tempfile
import time

import keras
import numpy as np

from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.device.noise import LogNormalDrift
from bayesft_keras.tuning.config import load_preset
from bayesft_keras.tuning.objective import DriftObjective
from bayesft_keras.tuning.search import run_search
from bayesft_keras.tuning.tuner import BayesFTTuner

REFERENCE_TRIAL_S = 9.3  # the authors' PyTorch procedure, same workload, 2-core CPU


def _phases(timings):
    rows = np.array([[t["train"], t["score"], t["save"], t["total"]] for t in timings.values()])
    return rows.mean(axis=0)


def default_preset_split(trials):
    config = load_preset("quick").replace(trials=trials, baselines=[])
    with tempfile.TemporaryDirectory() as d:
        result = run_search(config, d, verbose=0)
    train, score, save, total = _phases(result.best.timings)
    overhead = total - train
    print(f"default preset ({config.arch}, width {config.width}, {config.dataset}, {config.epochs} epochs, "
          f"{config.chips} chips at sigma={config.sigma} + a 7-point curve), mean of {trials} trials:")
    print(f"  training {train:6.2f} s | drift scoring {score:5.2f} s | save+log {save:5.2f} s | "
          f"oracle+csv {total - train - score - save:5.2f} s | trial {total:6.2f} s")
    print(f"  overhead beyond training: {overhead / total:6.1%} of the trial (target <= 25 %)")


def reference_trial():
    rng = np.random.default_rng(0)
    projection = rng.standard_normal((28 * 28, 10)).astype("float32")

    def make(n):
        x = rng.random((n, 28, 28, 1), dtype="float32")
        y = np.argmax((x.reshape(n, -1) - 0.5) @ projection, axis=1).astype("int32")
        return x, y

    x_train, y_train = make(8000)
    x_eval, y_eval = make(2000)
    hypermodel = BayesFTHyperModel(
        "lenet5", (28, 28, 1), 10, noise=LogNormalDrift(1.5), epochs=20, batch_size=256
    )
    objective = DriftObjective(sigma=1.5, chips=30, curve_sigmas=())
    with tempfile.TemporaryDirectory() as d:
        tuner = BayesFTTuner(
            hypermodel,
            objective_spec=objective,
            validation_data=(x_eval, y_eval),
            max_trials=1,
            directory=d,
            project_name="reference",
        )
        tuner.search(x_train, y_train, verbose=0)
        (timing,) = tuner.timings.values()
    print("reference workload (LeNet-5, 8,000 images, batch 256, 20 epochs; 30 draws at sigma=1.5 on 2,000):")
    print(f"  training {timing['train']:6.2f} s | drift scoring {timing['score']:5.2f} s | "
          f"save+log {timing['save']:5.2f} s | trial {timing['total']:6.2f} s")
    print(f"  reference (authors' PyTorch, 2-core CPU): {REFERENCE_TRIAL_S} s -> ratio ours/reference "
          f"{timing['total'] / REFERENCE_TRIAL_S:.2f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--skip-default", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"keras {keras.__version__} ({keras.backend.backend()})")
    keras.utils.set_random_seed(0)
    if not args.skip_default:
        default_preset_split(args.trials)
    reference_trial()


if __name__ == "__main__":
    main()
