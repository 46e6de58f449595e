"""Object detection on a drifting ReRAM chip: mAP against the drift sigma.

Trains the CenterNet-style ReRAM detector on `digits-detect` (scenes of
scikit-learn's bundled handwritten digits, offline) without dropout and with
channel dropout at every site, then sweeps the drift sigma with many simulated
chips per value and plots mAP@0.5 (pycocotools) of both, as a BayesFT search
would score them. On 2 shared CPU cores it took 20 minutes (4 of them training);
the result is docs/img/detection_drift.png.

    python examples/detection_drift.py                    # writes detection_drift.png
    python examples/detection_drift.py --out docs/img/detection_drift.png

Any of these numbers can be changed from the command line (--help).
"""

import argparse
import time

import keras
import keras_tuner
import numpy as np

from bayesft_keras import detection
from bayesft_keras.device.chip import noise_off
from bayesft_keras.evaluation import evaluate_drift
from bayesft_keras.evaluation import plot_reports
from bayesft_keras.device.noise import LogNormalDrift


def train(ds, rate, args):
    """The detector trained with dropout ``rate`` at every site (the tuner's recipe)."""
    keras.utils.set_random_seed(args.seed)
    hypermodel = detection.DetectionHyperModel(
        ds.input_shape, ds.num_classes, noise=LogNormalDrift(args.sigma), width=args.width,
        epochs=args.epochs,
    )
    hp = keras_tuner.HyperParameters()
    for name in hypermodel.hyperparameter_names():
        hp.Fixed(name, rate)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, ds.x_train, ds.y_train, verbose=args.verbose)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.2],
                        help="dropout rates to compare (one model each, every site)")
    parser.add_argument("--examples", type=int, default=3000, help="digits-detect scenes")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=float, default=0.5, help="channel multiplier")
    parser.add_argument("--sigma", type=float, default=0.3, help="the device's drift sigma")
    parser.add_argument("--max-sigma", type=float, default=0.5)
    parser.add_argument("--points", type=int, default=11, help="sigma values from 0 to --max-sigma")
    parser.add_argument("--chips", type=int, default=10, help="simulated chips per sigma")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="detection_drift.png")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args()

    ds = detection.load("digits-detect", num_examples=args.examples, seed=args.seed)
    print(ds)
    sigmas = np.round(np.linspace(0.0, args.max_sigma, args.points), 10).tolist()
    reports = []
    for rate in args.rates:
        start = time.perf_counter()
        model = train(ds, rate, args)
        trained = time.perf_counter()
        with noise_off(model):
            stats = detection.DetectionMAP().evaluate(ds.y_test, model.predict(ds.x_test, verbose=0))
        report = evaluate_drift(
            model, ds, sigmas=sigmas, chips=args.chips, metric=detection.DetectionMAP("map50"),
            seed=args.seed, name=f"dropout {rate:g}", dataset="digits-detect/test",
        )
        reports.append(report)
        print(
            f"dropout {rate:g}: clean mAP@0.5 {stats['map50']:.3f}, COCO mAP {stats['map']:.3f} "
            f"(train {trained - start:.0f} s, drift sweep {time.perf_counter() - trained:.0f} s)"
        )
        for sigma, mean, std in zip(report.values, report.mean(), report.std()):
            print(f"  sigma {sigma:.2f}: mAP@0.5 {mean:.3f} ± {std:.3f} over {report.chips} chips")
    plot_reports(reports, args.out, title="CenterNet-style ReRAM detector on digits-detect: mAP@0.5 under drift")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
