import dataclasses
from pathlib import Path
from typing import Optional

import typer

from bayesft_keras import tasks
from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import fail
from bayesft_keras.cli.app import user_errors
from bayesft_keras.cli.help_format import PresetDefaultsCommand
from bayesft_keras.utils.files import check_writable


def _parse_list(value):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@app.command(cls=PresetDefaultsCommand)  # --help shows the preset's values
@user_errors
def tune(
    task: Optional[str] = typer.Option(None, help="classification (default) or detection (scored by mAP@0.5)."),
    arch: Optional[str] = typer.Option(None, help="Architecture: mlp, lenet5, alexnet, vgg (=vgg11), vgg11, vgg16, resnet18, mobilenetv2; detection: centernet."),
    model: Optional[Path] = typer.Option(
        None, "--model", help="Your own network instead of --arch: a .keras file of a Sequential or Functional model (the preset's input_shape and warm start, made for its --arch, do not apply)."
    ),
    sites: Optional[str] = typer.Option(
        None, help="With --model, its dropout sites: all (after every Dense/Conv layer, default), dense, or comma-separated layer names."
    ),
    init_from_model: bool = typer.Option(
        False, "--init-from-model", help="With --model, start every trial from its weights (fine-tuning), not from new ones."
    ),
    dataset: Optional[str] = typer.Option(None, help="digits (bundled 8x8, offline), mnist5k (5,000 real MNIST digits, offline), synthetic, a tfds dataset (mnist, cifar10, ...), or your own data: a .npz file (x/y or x_train/y_train, ...), a folder of class subfolders of images, or a tfds-prepared folder."),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", help="Bring the images to H,W,C first (e.g. 32,32,3); needed for a folder of images of several sizes."
    ),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="tfds data directory."),
    sigma: Optional[float] = typer.Option(None, help="Target drift sigma of the objective."),
    chips: Optional[int] = typer.Option(None, help="Simulated chips per objective evaluation."),
    bits: Optional[str] = typer.Option(None, help="Device weight precision in bits (2-16), or 'none'."),
    device: Optional[str] = typer.Option(
        None, help="Device preset from devices/: lognormal (default, the paper's), pcm, reram-cmo, or a TOML file; --sigma is then the value of its swept parameter (default: its target)."
    ),
    trials: Optional[int] = typer.Option(None, help="Search budget: trials per tuned method."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs per trial."),
    trials_at_once: Optional[str] = typer.Option(
        None, "--trials-at-once",
        help="Trials trained together as copies in one compiled model (a GPU's idle time): a number, or auto (from the GPU's free memory; 1 on a CPU).",
    ),
    preset: Optional[str] = typer.Option(None, help="A preset name from tuners/ or a path to a TOML file (default: quick; detection-quick with --task detection)."),
    dir: Optional[Path] = typer.Option(None, "--dir", help="Run directory (default: runs/<preset>); reuse it to resume."),
    seed: Optional[int] = typer.Option(None, help="Seed of data splits, training, oracle and chips."),
    baselines: Optional[str] = typer.Option(
        None, help="Comma list of baselines: random, uniform, no_dropout, noise_injection, ftna, awp ('none' for none)."
    ),
    width: Optional[float] = typer.Option(None, help="Width multiplier of the architecture."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training batch size."),
    min_clean_accuracy: Optional[float] = typer.Option(None, "--min-clean-accuracy", help="Trials below this clean accuracy score 0."),
    init: Optional[str] = typer.Option(None, help="Weight initialization: torch (PyTorch's default, as the authors train), he, glorot, or 'default' (the architecture's)."),
    init_scale: Optional[float] = typer.Option(None, "--init-scale", help="Factor on every initial weight's bound."),
    search_space: Optional[str] = typer.Option(None, "--search-space", help="paper (dropout rates only) or extended (also init scale, weight decay, noise-injection sigma, learning rate)."),
    warm_start_epochs: Optional[int] = typer.Option(None, "--warm-start-epochs", help="Train once without dropout for this many epochs and start every trial from it (0: from the initialization)."),
    quiet: bool = typer.Option(False, help="Only print the result."),
    # Distributed tuning (tuning/distributed.py): Keras Tuner's chief/worker mode, tf.distribute.
    chief: Optional[str] = typer.Option(
        None, help="HOST:PORT of the chief of a distributed search (search i of the run uses PORT+i)."
    ),
    worker_id: Optional[str] = typer.Option(
        None, "--worker-id", help="'chief' to serve the oracles, else this worker's id (tuner0, tuner1, ...)."
    ),
    distribute: str = typer.Option(
        "none", help="Data-parallel training of each trial: 'mirrored' (tf.distribute over local GPUs) or 'none'."
    ),
    # Who may talk to the chief (tuning/cluster.py: ChiefSecurity).
    token_file: Optional[Path] = typer.Option(
        None, "--token-file",
        help="File holding the run's token: the chief refuses calls without it (default: $BAYESFT_CHIEF_TOKEN).",
    ),
    tls_cert: Optional[Path] = typer.Option(
        None, "--tls-cert", help="Chief: its TLS certificate (PEM), with --tls-key. Worker: trusted when no --tls-ca."
    ),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="Chief: its TLS private key (PEM)."),
    tls_ca: Optional[Path] = typer.Option(
        None, "--tls-ca", help="Worker: the certificate (CA) the chief's TLS certificate is checked against."
    ),
):
    """Search per-layer dropout rates that keep a network accurate after ReRAM drift (BayesFT)."""
    from bayesft_keras.tuning import distributed
    from bayesft_keras.tuning.config import load_preset

    cluster = distributed.Cluster.from_flags(
        chief, worker_id, token_file=token_file, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca
    )
    if distribute not in distributed.DISTRIBUTE_CHOICES:
        fail(f"`distribute` must be one of {list(distributed.DISTRIBUTE_CHOICES)}. Received: distribute={distribute!r}")

    if model is not None and arch is not None:
        fail(f"Give --model or --arch, not both. Received: --model {model} --arch {arch}")
    if model is None and (sites is not None or init_from_model):
        fail("--sites and --init-from-model are for --model (your own network). Received them without --model")
    if preset is None:
        preset = default_preset(task)
    config = load_preset(preset)
    if model is not None and config.model is None:
        # --model replaces the preset's zoo network, and with it the settings made for that network:
        # its input size (the data are brought to the model's) and its warm start.
        config = dataclasses.replace(config, input_shape=None, warm_start_epochs=0)
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
    if device is not None and sigma is None and device != "lognormal":
        from bayesft_keras.device.presets import load_device

        sigma = load_device(device).target
    config = config.replace(
        input_shape=parse_input_shape(input_shape),
        device=device,
        task=task,
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
        init=init,
        init_scale=init_scale,
        search_space=search_space,
        warm_start_epochs=warm_start_epochs,
        model=None if model is None else str(model),  # made absolute, with its fingerprint, by TuneConfig
        sites=sites,
        init_from_model=True if init_from_model else None,
        trials_at_once=_parse_trials_at_once(trials_at_once),
    )
    _check_names(config)
    directory = dir or Path("runs") / config.name
    check_writable(directory, "--dir")  # a regular file or a read-only folder: one line, before any work
    from bayesft_keras.tuning.durable import SaveFailed
    from bayesft_keras.tuning.run_lock import RunDirectoryLocked
    from bayesft_keras.tuning.search import run_search

    try:
        strategy = distributed.mirrored_strategy(distribute)
        result = run_search(
            config, directory, verbose=0 if quiet else 1, cluster=cluster, distribution_strategy=strategy
        )
    except (SaveFailed, RunDirectoryLocked) as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(
            f"Interrupted. Finished trials are saved in {directory}; run the same command "
            f"with --dir {directory} to resume.",
            err=True,
        )
        raise typer.Exit(code=130)
    if cluster is not None and not cluster.is_chief:
        trials = ", ".join(f"{method}: {n}" for method, n in result.worker_trials.items())
        typer.echo(f"Worker {cluster.worker_id}: the search is over; trials run here: {trials}.")
        return
    if config.model is not None:
        _write_plain_model(result.directory)
    _print_result(result)


PLAIN_MODEL_FILE = "best_model_plain.keras"


def _write_plain_model(directory):
    """RUN/best_model_plain.keras: the best model of a `--model` search in Keras's own layers, its
    dropout rates inside (RUN/best_model.keras is the same model on the device)."""
    import keras

    from bayesft_keras.tuning import durable
    from bayesft_keras.tuning.site_copy import plain_model

    best = keras.models.load_model(directory / "best_model.keras", compile=False)
    durable.save_model(plain_model(best), directory / PLAIN_MODEL_FILE)


def parse_input_shape(text):
    """`"H,W,C"` -> (H, W, C); None stays None."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        fail(f"`input_shape` must be H,W,C of positive integers (e.g. 28,28,1). Received: input_shape={text!r}")
    return shape


def default_preset(task=None):
    """The preset `tune --task TASK` starts from without `--preset` (TASK None: the default task)."""
    from bayesft_keras.tuning.config import DEFAULT_PRESET

    name = task or tasks.DEFAULT_TASK
    # An unknown task starts from the default preset, whose validation then names the valid tasks.
    return tasks.get(name).default_preset if name in tasks.names() else DEFAULT_PRESET


def _check_names(config):
    """Fails fast, before any data is read, on names that cannot work."""
    task = tasks.get(config.task)
    if config.device != "lognormal":
        from bayesft_keras.device.presets import tuning_device

        if not task.device_presets:
            fail(f"`device` presets are for classification. Received: device={config.device!r}, task={config.task!r}")
        tuning_device(config)  # raises, naming the preset's problem
    task.check_names(config)  # raises, listing the valid names


def _print_result(result):
    from rich.console import Console
    from rich.table import Table

    from bayesft_keras.tuning.search import METHOD_TITLES

    config = result.config
    task = tasks.get(config.task)
    score, short = task.score_name, task.short_score_name
    table = Table(title=f"{config.arch} on {config.dataset}: test {score} on drifted chips")
    table.add_column("method")
    table.add_column(f"drift {short} (sigma={config.sigma})", justify="right")
    table.add_column(f"clean {short}", justify="right")
    table.add_column("validation objective", justify="right")
    table.add_column("trials", justify="right")
    for method, drift, clean, val, trials in result.table_rows():
        table.add_row(METHOD_TITLES[method], f"{drift:.4f}", f"{clean:.4f}", f"{val:.4f}", str(trials))
    console = Console()
    console.print(table)
    console.print("Best BayesFT dropout rates:")
    for name, value in result.best.hyperparameters.items():
        console.print(f"  {name} = {value:.3f}")
    from bayesft_keras.tuning.verdict import verdict_lines

    for line in verdict_lines(result, METHOD_TITLES):
        console.print(line)
    if config.model is not None:
        console.print(
            f"Best model: {result.directory / 'best_model.keras'} (on the device), "
            f"{result.directory / PLAIN_MODEL_FILE} (plain Keras, its dropout rates inside)"
        )
    console.print(f"Run directory: {result.directory} (tensorboard --logdir {result.directory / 'tb'})")
    console.print(f"Report: {result.directory / 'report.html'} (open it in a browser)", highlight=False)


def _parse_trials_at_once(value):
    """`--trials-at-once`: "auto", a number as an int; anything else as given (the config refuses it)."""
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        return value
