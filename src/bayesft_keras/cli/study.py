"""`bayesft-keras study`: which network components tolerate weight drift."""

import logging
from pathlib import Path
from typing import Optional

import typer

from bayesft_keras.cli.app import UsageError
from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import user_errors
from bayesft_keras.utils.files import check_writable


def _floats(option, text):
    """`"a,b,c"` -> list of floats."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = None
    if not values:
        raise UsageError(f"{option} must be a comma-separated list of numbers. Received: {text!r}")
    return values


@app.command()
@user_errors
def study(
    dataset: str = typer.Option("digits", help="digits (bundled 8x8, offline), mnist5k (5,000 real MNIST digits, offline), synthetic, a prepared tfds dataset (mnist, ...), or your own data: a .npz file, a folder of class subfolders of images, or a tfds-prepared folder."),
    arch: str = typer.Option("mlp", help="Architecture of the zoo; the depth component applies to mlp only."),
    components: Optional[str] = typer.Option(
        None, help="Comma list of dropout, normalization, depth, activation (default: all that apply to --arch)."
    ),
    seeds: int = typer.Option(3, help="Seeds per variant (training and chips)."),
    sigmas: str = typer.Option("0:1.5:0.25", help="Drift sigmas: start:stop:step (stop included) or a comma list."),
    chips: int = typer.Option(10, help="Simulated chips per sigma and run."),
    epochs: int = typer.Option(10, help="Training epochs per run."),
    batch_size: int = typer.Option(128, "--batch-size", help="Training batch size."),
    learning_rate: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: the architecture's recipe)."),
    width: float = typer.Option(1.0, help="Width multiplier of the architecture."),
    bits: Optional[int] = typer.Option(None, help="Device weight precision in bits (2-16) for the evaluation."),
    dropout_rates: str = typer.Option("0.2,0.5,0.8", "--dropout-rates", help="Dropout rates compared with no dropout."),
    k: float = typer.Option(2.0, help="A difference is significant beyond k standard errors."),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", help="Resize the images to H,W,C first, e.g. 28,28,1 for lenet5 on digits."
    ),
    out: Optional[Path] = typer.Option(None, help="Study folder (default runs/study_<dataset>_<arch>); reuse it to resume."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="tfds data directory."),
    quiet: bool = typer.Option(False, help="No progress bar; only the summary."),
):
    """Train network variants (dropout, normalization, depth, activation) and compare their drift tolerance."""
    from bayesft_keras.cli.evaluate import parse_values
    from bayesft_keras.study import run_study
    from bayesft_keras.study.variants import parse_components

    # One new compiled evaluator per run makes TensorFlow warn about retracing; expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    names = parse_components(components)
    grid = {"dropout": _floats("--dropout-rates", dropout_rates)} if names is None or "dropout" in names else None
    shape = None
    if input_shape is not None:
        try:
            shape = tuple(int(v) for v in input_shape.split(","))
        except ValueError:
            raise UsageError(f"--input-shape must be H,W,C (e.g. 28,28,1). Received: {input_shape!r}") from None
    from bayesft_keras import data

    dataset = data.resolve(dataset)  # a path: absolute and checked, before any training
    # A path's default folder is named by its file or folder name (runs/study_mydata_mlp).
    label = Path(dataset).stem if data.is_path(dataset) else dataset
    directory = out or Path("runs") / f"study_{label}_{arch}"
    check_writable(directory, "--out")
    try:
        result = run_study(
            arch=arch, dataset=dataset, components=names, seeds=seeds, sigmas=parse_values(sigmas),
            chips=chips, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            width=width, bits=bits, grid=grid, k=k, out=directory, input_shape=shape, data_dir=data_dir,
            verbose=0 if quiet else 1,
        )
    except KeyboardInterrupt:
        typer.echo(
            f"Interrupted. Finished runs are saved in {directory}; run the same command to resume.",
            err=True,
        )
        raise typer.Exit(code=130)
    _print_result(result)


def _print_result(result):
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from bayesft_keras.study.summary import MARKERS
    from bayesft_keras.study.summary import table_indices

    console = Console()
    first = result.components[0].baseline
    columns = table_indices(first.sigmas)
    k = result.components[0].comparisons[0].k
    table = Table(
        title=f"Mean accuracy under drift over {first.num_seeds} seed(s)",
        caption=f"▲/▼: above/below the baseline by more than {k:g} standard errors; "
        f"± std in {result.files['table']}",
        box=box.SIMPLE_HEAD, pad_edge=False,
    )
    table.add_column("variant")
    for i in columns:
        table.add_column(f"σ={first.sigmas[i]:g}", justify="right")
    for component in result.components:
        table.add_row(f"[bold]{component.component}[/bold]")
        for stats, comparison in component.rows():
            label = "baseline" if comparison is None else stats.label
            mean = stats.mean()
            verdicts = comparison.verdicts if comparison else [None] * len(mean)
            # A blank where there is no marker keeps the numbers aligned.
            cells = [f"{mean[i]:.3f}{MARKERS.get(verdicts[i], '').strip() or ' '}" for i in columns]
            table.add_row(f"  {label}", *cells)
    console.print(table)
    for component in result.components:
        console.print(f"[bold]{component.component}[/bold]: {component.verdict}", highlight=False)
        for comparison in component.comparisons:
            console.print(f"  {comparison.statement()}", highlight=False)
    for component, reason in result.skipped.items():
        console.print(f"[bold]{component}[/bold]: skipped ({reason})", highlight=False)
    console.print(
        f"{result.trained} runs trained, {result.reused} reused, {result.seconds:.0f} s. "
        f"Summary: {result.files['summary']}; table: {result.files['table']}; "
        f"CSV: {result.files['csv']}; plots: {', '.join(result.files['plots'].values())}",
        highlight=False,
    )
    if result.files.get("report"):
        console.print(f"Report: {result.files['report']} (open it in a browser)", highlight=False)
