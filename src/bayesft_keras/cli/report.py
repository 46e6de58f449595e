"""`bayesft-keras report RUN`: (re)writes RUN/report.html of a `tune` run or a `study` folder."""

import json
from pathlib import Path
from typing import Optional

import typer

from bayesft_keras.cli.app import app
from bayesft_keras.cli.app import user_errors


@app.command()
@user_errors
def report(
    run: Path = typer.Argument(..., help="A run directory of `tune` (its --dir) or a study folder (its --out)."),
    yield_threshold: Optional[float] = typer.Option(
        None, "--yield-threshold",
        help="Accuracy in [0, 1] a chip needs to count in a search's yield (default: 90 % of the best clean accuracy).",
    ),
):
    """Write RUN/report.html: one self-contained page of a run's results, plots and settings."""
    from bayesft_keras.reporting import write_report
    from bayesft_keras.reporting.runs import STUDY_CONFIG
    from bayesft_keras.reporting.runs import TUNE_CONFIG

    chance, note = None, ""
    if run.is_dir() and (run / TUNE_CONFIG).is_file() and not (run / STUDY_CONFIG).is_file():
        chance, note = _chance(run / TUNE_CONFIG)
    path = write_report(run, chance=chance, yield_threshold=yield_threshold)
    typer.echo(f"Wrote {path}{note}")


def _chance(config_path):
    """The score of guessing on the run's data (its task's `chance`), for the plots' chance line;
    (None, why) where the settings or the data cannot be read (the page is written without it)."""
    from bayesft_keras import tasks
    from bayesft_keras.tuning.config import TuneConfig

    try:
        config = TuneConfig().replace(**json.loads(config_path.read_text(encoding="utf-8")))
        task = tasks.get(config.task)
        chance = task.chance(task.load_data(config))
    except Exception as e:  # noqa: BLE001 -- any failure only costs the chance line
        return None, f" (no chance line: {' '.join(str(e).split())[:200]})"
    return chance, ""
