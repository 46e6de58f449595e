from pathlib import Path
from typing import Optional

import typer

from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import fail
from bayesft_keras.cli.app import user_errors

_OWN_FLAGS = ("--chief", "--worker-id")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def launch(
    ctx: typer.Context,
    workers: int = typer.Option(..., help="Number of worker processes (each runs trials)."),
    preset: Optional[str] = typer.Option(None, help="A preset name from tuners/ or a path to a TOML file (as tune's)."),
    dir: Optional[Path] = typer.Option(None, "--dir", help="Run directory (default: runs/<preset>)."),
    port: Optional[int] = typer.Option(None, help="First oracle port (default: a free one); search i uses PORT+i."),
    host: str = typer.Option("127.0.0.1", help="Address the chief listens on."),
    restarts: int = typer.Option(2, help="How often a worker that dies is started again (it re-runs its trial)."),
    gpus: Optional[str] = typer.Option(
        None, help="Comma list of GPU ids to spread the workers over, one GPU each in turn (e.g. 0,1,2,3)."
    ),
    token_file: Optional[Path] = typer.Option(
        None, "--token-file",
        help="File holding the token every call to the chief must carry (default: a random one per launch, or "
             "$BAYESFT_CHIEF_TOKEN when set).",
    ),
    tls_cert: Optional[Path] = typer.Option(
        None, "--tls-cert", help="The chief's TLS certificate (PEM): it serves over TLS (with --tls-key)."
    ),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="The chief's TLS private key (PEM)."),
    tls_ca: Optional[Path] = typer.Option(
        None, "--tls-ca", help="Certificate the workers check the chief's against (default: --tls-cert, self-signed)."
    ),
):
    """Run a distributed search on this machine: a chief and N workers, with logs in RUN/logs.

    Other options are those of `bayesft-keras tune` and go to every process,
    e.g. `bayesft-keras launch --workers 2 --preset quick --trials 8`. Every
    call to the chief must carry the run's token: a random one made for the
    launch and passed to each process in BAYESFT_CHIEF_TOKEN (set it yourself
    to let workers started elsewhere join), or the file of --token-file.
    """
    from bayesft_keras.tuning import launcher
    from bayesft_keras.utils.files import check_writable
    from bayesft_keras.tuning.config import BASELINES
    from bayesft_keras.cli.tune import default_preset
    from bayesft_keras.tuning.config import load_preset

    tune_args = list(ctx.args)
    for flag in _OWN_FLAGS + ("--dir",):
        if any(arg == flag or arg.startswith(flag + "=") for arg in tune_args):
            fail(f"`launch` sets {flag} of each process itself. Received: {' '.join(tune_args)}")
    if port is not None and not 1 <= port <= 65535 - len(BASELINES):
        fail(f"`port` must be in [1, {65535 - len(BASELINES)}]. Received: port={port}")
    if preset is not None:
        tune_args = ["--preset", preset, *tune_args]
    else:  # tune's default preset
        preset = default_preset(_task_of(tune_args))
    directory = dir or Path("runs") / load_preset(preset).name
    check_writable(directory, "--dir")  # before any process starts
    result = launcher.launch(
        tune_args,
        directory,
        workers,
        host=host,
        port=port,
        searches=1 + len(BASELINES),  # ports for the most searches a run can hold
        restarts=restarts,
        gpus=_parse_gpus(gpus),
        echo=lambda line: typer.echo(line),
        token_file=token_file,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
    )
    for worker_id, codes in result.exit_codes.items():
        if codes and codes[-1] not in (0, None):
            tail = _tail(result.logs / f"{worker_id}.log")
            if tail:
                typer.echo(f"{worker_id}.log ends with: {tail}", err=True)
    summary = directory / "summary.md"
    if result.exit_code == 0 and summary.is_file():
        typer.echo(summary.read_text())
        typer.echo(f"Run directory: {directory}; logs in {result.logs}")
    raise typer.Exit(code=result.exit_code)


def _parse_gpus(value):
    if value is None:
        return None
    ids = [v.strip() for v in value.split(",")]
    if not ids or not all(v.isdigit() for v in ids):
        fail(f"`gpus` must be a comma list of GPU ids, e.g. 0,1. Received: gpus={value!r}")
    return ids


def _tail(path, lines=1):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def _task_of(tune_args):
    """The value of `--task` among tune's arguments, or None."""
    for i, arg in enumerate(tune_args):
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
        if arg == "--task" and i + 1 < len(tune_args):
            return tune_args[i + 1]
    return None
