"""`python -m bayesft_keras.bridge evaluate MODEL ...`: the bridge's own command line.

Runs in a Keras 2 process (`TF_USE_LEGACY_KERAS=1`; `bayesft_keras.bridge.
evaluate_file` and `bayesft-keras evaluate` start it so). Loads a tf_keras
model file, sweeps drift with `evaluate_drift_legacy` and writes the report
(report.json, report.csv, report.png) as `bayesft-keras evaluate` does.
Input errors are one line on stderr (`Error: ...`) and exit code 2.
"""

import argparse
import json
import os
import sys

from bayesft_keras.bridge.launcher import PROGRESS_PREFIX
from bayesft_keras.utils import checks
from bayesft_keras.utils.values import UsageError
from bayesft_keras.utils.values import parse_values

_NOISE_NAMES = ("lognormal", "programming", "stuck-at")
_FORMATS = ("json", "csv", "png")


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m bayesft_keras.bridge",
        description="Drift evaluation of Keras 2 (tf_keras) models with bayesft-keras's device models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser(
        "evaluate", help="Monte Carlo drift sweep of a tf_keras model file (h5 / SavedModel)."
    )
    evaluate.add_argument("model", help="An .h5 file or a SavedModel folder written by tf_keras.")
    evaluate.add_argument("--dataset", "-d", default="digits", help="Dataset name (bayesft_keras.data).")
    evaluate.add_argument("--split", default="test", help="Split to evaluate on: test or val.")
    evaluate.add_argument(
        "--values", "--sigmas", dest="values", default=None,
        help="Swept values: start:stop:step (stop included) or a,b,c (default: 0:1.5:0.05).",
    )
    evaluate.add_argument("--chips", type=int, default=20, help="Simulated chips per value.")
    evaluate.add_argument("--seed", type=int, default=0, help="Seed of the chips.")
    evaluate.add_argument("--metric", default="accuracy", help="'accuracy' or a Keras metric name.")
    evaluate.add_argument("--threshold", type=float, default=None, help="Yield threshold.")
    evaluate.add_argument("--bits", type=int, default=None, help="Device weight precision (default: the model's QAT bits).")
    evaluate.add_argument(
        "--noise", default=None,
        help="lognormal, programming, stuck-at, or a serialized noise model as JSON (default: lognormal).",
    )
    evaluate.add_argument("--param", default=None, help="Noise parameter to sweep (default: sigma).")
    evaluate.add_argument("--max-examples", type=int, default=None, help="Evaluate on at most this many examples.")
    evaluate.add_argument("--data-seed", type=int, default=0, help="Split seed of the dataset (as in training).")
    evaluate.add_argument("--batch-size", type=int, default=None, help="Examples per forward pass.")
    evaluate.add_argument("--name", default=None, help="Label of the model (default: the file name).")
    evaluate.add_argument("--out", "-o", default="report", help="Folder for the report files.")
    evaluate.add_argument(
        "--formats", default="json,csv,png", help="Comma list of report files to write: json, csv, png."
    )
    evaluate.add_argument(
        "--progress", choices=("bar", "lines", "none"), default="bar",
        help="bar: a progress bar; lines: protocol lines for a parent process; none.",
    )
    return parser


def _noise(text):
    from bayesft_keras.device import noise as noise_lib

    if text is None:
        return None
    if text.lstrip().startswith("{"):
        try:
            return noise_lib.get(json.loads(text))
        except json.JSONDecodeError as e:
            raise ValueError(f"--noise is not valid JSON: {e}") from None
    models = {
        "lognormal": noise_lib.LogNormalDrift,
        "programming": noise_lib.ProgrammingNoise,
        "stuck-at": noise_lib.StuckAtFaults,
    }
    if text not in models:
        raise ValueError(
            f"--noise must be one of {', '.join(_NOISE_NAMES)} or a JSON config. Received: {text!r}"
        )
    return models[text]()


def _formats(text):
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(_FORMATS))
    if unknown or not formats:
        raise ValueError(f"--formats must be a comma list of {', '.join(_FORMATS)}. Received: {text!r}")
    return formats


def evaluate(args):
    """Runs the `evaluate` command; returns the `DriftReport`."""
    from bayesft_keras.evaluation.files import load_data_for

    formats = _formats(args.formats)
    values = parse_values(args.values) if args.values is not None else None
    noise = _noise(args.noise)
    checks.positive_int("chips", args.chips)
    checks.seed(args.seed)
    if args.max_examples is not None:
        checks.positive_int("max_examples", args.max_examples)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} exists and is not a folder.")

    from bayesft_keras.bridge import legacy_drift

    model = legacy_drift.load_legacy_model(args.model)
    x, y = load_data_for(model, args.dataset, args.split, args.data_seed, args.max_examples)
    name = args.name or os.path.splitext(os.path.basename(os.path.normpath(args.model)))[0]
    if args.progress == "lines":
        def progress(done, total):
            print(f"{PROGRESS_PREFIX} {done} {total}", flush=True)
    else:
        progress = args.progress == "bar"
    report = legacy_drift.evaluate_drift_legacy(
        model,
        x,
        y,
        noise=noise,
        values=values,
        chips=args.chips,
        seed=args.seed,
        metric=args.metric,
        param=args.param,
        bits=args.bits,
        threshold=args.threshold,
        batch_size=args.batch_size,
        name=name,
        dataset=f"{args.dataset}/{args.split}",
        progress=progress,
    )
    os.makedirs(args.out, exist_ok=True)
    written = []
    for fmt in formats:
        path = os.path.join(args.out, f"report.{fmt}")
        {"json": report.to_json, "csv": report.to_csv, "png": report.plot}[fmt](path)
        written.append(path)
    if args.progress != "lines":
        from rich.console import Console

        Console().print(report.table())
        print(f"Wrote {', '.join(written)}")
    return report


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "evaluate":
            evaluate(args)
    except (UsageError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"Error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
