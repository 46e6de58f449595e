"""`bayesft-keras evaluate` (Monte Carlo drift sweep of a saved model) and `plot`."""

import os
from pathlib import Path
from typing import List
from typing import Optional

import typer

from bayesft_keras.cli.app import UsageError
from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import user_errors
from bayesft_keras.utils import checks
from bayesft_keras.utils.files import check_writable
from bayesft_keras.utils.values import parse_values

_NOISE_CHOICES = ("lognormal", "programming", "stuck-at")


def _noise(name):
    from bayesft_keras.device import noise

    if name is None:
        return None
    models = {
        "lognormal": noise.LogNormalDrift,
        "programming": noise.ProgrammingNoise,
        "stuck-at": noise.StuckAtFaults,
    }
    if name not in models:
        raise UsageError(f"--noise must be one of {', '.join(_NOISE_CHOICES)}. Received: {name!r}")
    return models[name]()


@app.command()
@user_errors
def evaluate(
    model: Path = typer.Argument(
        ..., help="A .keras model file (plain Keras or with ReRAM layers), or a tf_keras .h5 file / SavedModel folder."
    ),
    dataset: str = typer.Option("digits", "--dataset", "-d", help="Dataset name (bayesft_keras.data), your own data (a .npz file, a folder of class subfolders of images, a tfds-prepared folder; split with --data-seed as in training), or digits-detect, voc/2007, coco/2017 for a detector."),
    split: str = typer.Option("test", help="Split to evaluate on: test or val."),
    sigmas: Optional[str] = typer.Option(
        None, "--sigmas", "--values",
        help="Swept values: start:stop:step (stop included) or a,b,c (default: the device's, 0:1.5:0.05 for lognormal).",
    ),
    chips: int = typer.Option(20, help="Simulated chips per value."),
    seed: int = typer.Option(0, help="Seed of the chips; the same seed gives the same report."),
    metric: str = typer.Option("accuracy", help="'accuracy' or a Keras metric name; detection datasets: map50 (default), map, map75."),
    threshold: Optional[float] = typer.Option(None, help="Yield threshold: chips at or above it pass."),
    bits: Optional[int] = typer.Option(None, help="Device weight precision (default: the model's)."),
    noise: Optional[str] = typer.Option(
        None, help="Device noise: lognormal, programming or stuck-at (default: the model's, else lognormal)."
    ),
    param: Optional[str] = typer.Option(None, help="Noise parameter to sweep (default: the device's; sigma for lognormal)."),
    device: Optional[str] = typer.Option(
        None, help="Device preset from devices/ (lognormal, pcm, reram-cmo) or a TOML file: noise model, periphery, sweep."
    ),
    max_examples: Optional[int] = typer.Option(None, help="Evaluate on at most this many examples."),
    data_seed: int = typer.Option(0, help="Split seed of the dataset (as in training)."),
    batch_size: Optional[int] = typer.Option(None, help="Examples per forward pass."),
    name: Optional[str] = typer.Option(None, help="Label of the model (default: the file name)."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for report.json, report.csv, report.png."),
):
    """Monte Carlo drift sweep of a saved model: accuracy across simulated chips."""
    from rich.console import Console
    from rich.progress import BarColumn
    from rich.progress import MofNCompleteColumn
    from rich.progress import Progress
    from rich.progress import TextColumn
    from rich.progress import TimeElapsedColumn
    from rich.progress import TimeRemainingColumn

    from bayesft_keras.evaluation import evaluate_file

    # tf_keras models (.h5, SavedModel folders) are evaluated by the tf_keras
    # bridge in a Keras 2 subprocess; tfmot never enters this process.
    from bayesft_keras import bridge

    if bridge.is_legacy_model_path(model):
        evaluate_file = bridge.evaluate_file

    preset = None
    if device is not None:
        from bayesft_keras.device.presets import load_device

        if noise is not None:
            raise UsageError("Give --device or --noise, not both.")
        preset = load_device(device)
    if sigmas is not None:
        values = parse_values(sigmas)
    elif preset is not None and preset.values is not None:
        values = list(preset.values)
    else:
        values = parse_values("0:1.5:0.05")
    if param is None and preset is not None:
        param = preset.param
    device_kwargs = {}
    if preset is not None and preset.periphery is not None:
        device_kwargs["periphery"] = preset.periphery
    if not model.exists():
        raise FileNotFoundError(f"Model file not found: {model}")
    # Before the sweep: a bad flag or an unwritable --out must not cost a whole sweep.
    from bayesft_keras.device.quantization import validate_bits
    from bayesft_keras.evaluation import validation

    check_writable(out, "--out")
    from bayesft_keras import data

    dataset = data.resolve(dataset)  # a path: absolute (the report names it), checked before the model loads
    checks.seed(seed, "seed")
    checks.seed(data_seed, "data_seed")
    validation.check_threshold(threshold)
    validate_bits(bits, "bits")
    # The bar starts with the first scored chip: input errors come before it.
    bar = None
    task = None

    def on_progress(done, total):
        nonlocal bar, task
        if bar is None:
            bar = Progress(
                TextColumn(f"Evaluating {model.name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("chips"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            bar.start()
            task = bar.add_task("sweep", total=total)
        bar.update(task, completed=done)

    try:
        report = evaluate_file(
            model,
            dataset=dataset,
            split=split,
            data_seed=data_seed,
            max_examples=max_examples,
            name=name,
            values=values,
            chips=chips,
            seed=seed,
            metric=metric,
            threshold=threshold,
            bits=bits,
            noise=preset.noise if preset is not None else _noise(noise),
            param=param,
            batch_size=batch_size,
            progress=on_progress,
            **device_kwargs,
        )
    finally:
        if bar is not None:
            bar.stop()
    Console().print(report.table())
    out.mkdir(parents=True, exist_ok=True)
    report.to_json(out / "report.json")
    report.to_csv(out / "report.csv")
    report.plot(out / "report.png")
    typer.echo(f"Wrote {out / 'report.json'}, {out / 'report.csv'}, {out / 'report.png'}")


@app.command()
@user_errors
def plot(
    reports: List[Path] = typer.Argument(..., help="Drift report JSON files (from `evaluate`)."),
    output: Path = typer.Option(Path("drift.png"), "--output", "-o", help="PNG file to write."),
    labels: Optional[str] = typer.Option(None, help="Comma-separated legend labels, one per report."),
    title: Optional[str] = typer.Option(None, help="Plot title."),
):
    """Plot one or more drift reports on one PNG (mean with p5-p95 band)."""
    from bayesft_keras.evaluation import DriftReport
    from bayesft_keras.evaluation import plot_reports

    check_writable(output, "--output", folder=False)
    loaded = [DriftReport.from_json(path) for path in reports]
    if labels is not None:
        names = [s.strip() for s in labels.split(",")]
    elif len({r.model_name for r in loaded}) < len(loaded):
        names = _unique_file_labels(reports)
    else:
        names = None
    plot_reports(loaded, output, labels=names, title=title)
    typer.echo(f"Wrote {output}")


def _unique_file_labels(paths):
    """Short labels that tell report files apart: stem, then folder/stem, then the path."""
    for label in (lambda p: p.stem, lambda p: f"{p.parent.name}/{p.stem}", os.fspath):
        names = [label(p) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [f"{os.fspath(p)} #{i + 1}" for i, p in enumerate(paths)]
