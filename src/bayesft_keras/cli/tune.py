from pathlib import Path
from typing import Optional

import typer

from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import fail
from bayesft_keras.cli.app import user_errors


def _parse_list(value):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@app.command()
@user_errors
def tune(
    arch: Optional[str] = typer.Option(None, help="Architecture: mlp, lenet5, alexnet, vgg (=vgg11), vgg11, vgg16, resnet18, mobilenetv2."),
    dataset: Optional[str] = typer.Option(None, help="digits (bundled, offline), synthetic, or a tfds dataset (mnist, cifar10, ...)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="tfds data directory."),
    sigma: Optional[float] = typer.Option(None, help="Target drift sigma of the objective."),
    chips: Optional[int] = typer.Option(None, help="Simulated chips per objective evaluation."),
    bits: Optional[str] = typer.Option(None, help="Device weight precision in bits (2-16), or 'none'."),
    trials: Optional[int] = typer.Option(None, help="Search budget: trials per tuned method."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs per trial."),
    preset: str = typer.Option("quick", help="A preset name from tuners/ or a path to a TOML file."),
    dir: Optional[Path] = typer.Option(None, "--dir", help="Run directory (default: runs/<preset>); reuse it to resume."),
    seed: Optional[int] = typer.Option(None, help="Seed of data splits, training, oracle and chips."),
    baselines: Optional[str] = typer.Option(
        None, help="Comma list of baselines: random, uniform, no_dropout, noise_injection ('none' for none)."
    ),
    width: Optional[float] = typer.Option(None, help="Width multiplier of the architecture."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training batch size."),
    min_clean_accuracy: Optional[float] = typer.Option(None, "--min-clean-accuracy", help="Trials below this clean accuracy score 0."),
    quiet: bool = typer.Option(False, help="Only print the result."),
):
    """Search per-layer dropout rates that keep a network accurate after ReRAM drift (BayesFT)."""
    from bayesft_keras.tuning.config import load_preset

    config = load_preset(preset)
    if bits is not None:
        if bits.lower() == "none":
            bits_value = "none"
        else:
            try:
                bits_value = int(bits)
            except ValueError:
                fail(f"`bits` must be an integer in [2, 16] or 'none'. Received: bits={bits!r}")
    else:
        bits_value = None
    baseline_list = _parse_list(baselines)
    if baseline_list == ("none",):
        baseline_list = ()
    config = config.replace(
        arch=arch,
        dataset=dataset,
        data_dir=data_dir,
        sigma=sigma,
        chips=chips,
        bits=bits_value,
        trials=trials,
        epochs=epochs,
        seed=seed,
        baselines=baseline_list,
        width=width,
        batch_size=batch_size,
        min_clean_accuracy=min_clean_accuracy,
    )
    _check_names(config)
    directory = dir or Path("runs") / config.name
    from bayesft_keras.tuning.search import run_search

    try:
        result = run_search(config, directory, verbose=0 if quiet else 1)
    except KeyboardInterrupt:
        typer.echo(
            f"Interrupted. Finished trials are saved in {directory}; run the same command "
            f"with --dir {directory} to resume.",
            err=True,
        )
        raise typer.Exit(code=130)
    _print_result(result)


def _check_names(config):
    """Fails fast, before any data is read, on names that cannot work."""
    from bayesft_keras import architectures

    architectures.get(config.arch)  # raises, listing the valid names


def _print_result(result):
    from rich.console import Console
    from rich.table import Table

    from bayesft_keras.tuning.search import METHOD_TITLES

    config = result.config
    table = Table(title=f"{config.arch} on {config.dataset}: test accuracy on drifted chips")
    table.add_column("method")
    table.add_column(f"drift acc. (sigma={config.sigma})", justify="right")
    table.add_column("clean acc.", justify="right")
    table.add_column("validation objective", justify="right")
    table.add_column("trials", justify="right")
    for method, drift, clean, val, trials in result.table_rows():
        table.add_row(METHOD_TITLES[method], f"{drift:.4f}", f"{clean:.4f}", f"{val:.4f}", str(trials))
    console = Console()
    console.print(table)
    console.print("Best BayesFT dropout rates:")
    for name, value in result.best.hyperparameters.items():
        console.print(f"  {name} = {value:.3f}")
    if "no_dropout" in result.methods:
        rows = {r[0]: r for r in result.table_rows()}
        gain = rows["bayesft"][1] - rows["no_dropout"][1]
        console.print(
            f"BayesFT vs no dropout at sigma={config.sigma}: {rows['bayesft'][1]:.4f} vs "
            f"{rows['no_dropout'][1]:.4f} ({gain:+.4f})"
        )
    console.print(f"Run directory: {result.directory} (tensorboard --logdir {result.directory / 'tb'})")
