"""LeNet-5 on real MNIST digits (mnist5k): drift tolerance by initialization and optimizer semantics.

The figures of `benchmarks/RESULTS.md`, "Recipe fidelity": for each training seed, init ("he", "torch")
and optimizer ("torch": `TorchAdam`, PyTorch's Adam with coupled L2 under a one-cycle schedule with
cycled momentum; "keras": Keras's Adam with decoupled weight decay), LeNet-5 is trained without
dropout and with the authors' best rates, then read on 30 chips (the same chip seeds for every row)
at sigma 0, 0.8, 1.0 and 1.5 on the test split.

    python benchmarks/bench_recipe_init.py [--inits he,torch] [--optimizers torch,keras] [--seeds 0,1]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bayesft_keras import architectures  # noqa: E402
from bayesft_keras import data  # noqa: E402
from bayesft_keras.evaluation import evaluate_drift  # noqa: E402
from bayesft_keras.tuning.optimizers import one_cycle_adam  # noqa: E402
from bayesft_keras.tuning.schedules import OneCycle  # noqa: E402

AUTHORS_RATES = {"conv1": 0.8, "conv2": 0.54, "conv3": 0.76, "fc1": 0.32, "output": 0.25}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inits", default="he,torch")
    p.add_argument("--optimizers", default="torch,keras")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--out", default=None, help="JSON of every row")
    args = p.parse_args()
    ds = data.load("mnist5k", seed=0)
    steps = 20 * int(np.ceil(len(ds.x_train) / 256))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for init in args.inits.split(","):
            for opt in args.optimizers.split(","):
                for label, rates in (("no dropout", 0.0), ("authors' rates", AUTHORS_RATES)):
                    keras.utils.set_random_seed(seed)
                    model = architectures.build("lenet5", dropout=rates, init=init)
                    if opt == "torch":
                        optimizer = one_cycle_adam(0.01, steps, 1e-4, 0.1)
                    else:
                        optimizer = keras.optimizers.Adam(OneCycle(0.01, steps), weight_decay=1e-4, clipvalue=0.1)
                    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
                    began = time.perf_counter()
                    model.fit(ds.x_train, ds.y_train, epochs=20, batch_size=256, verbose=0)
                    fit_s = time.perf_counter() - began
                    report = evaluate_drift(model, (ds.x_test, ds.y_test), sigmas=[0.0, 0.8, 1.0, 1.5],
                                            chips=30, seed=7, progress=False)
                    row = dict(seed=seed, init=init, optimizer=opt, rates=label, fit_s=round(fit_s, 1),
                               **{f"sigma_{v:g}": round(float(m), 3) for v, m in zip(report.values, report.mean())})
                    print(row, flush=True)
                    rows.append(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
