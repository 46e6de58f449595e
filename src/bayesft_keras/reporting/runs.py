"""What a report page reads: the files of a `tune` run directory or of a `study` folder.

Reads files only, never the modules that wrote them (`tuning`, `study`): those
call this package, so it must not import them back. The layouts read here are
documented where they are written (`tuning/search.py`, `study/runner.py`).
"""

import csv
import dataclasses
import json
from pathlib import Path

from bayesft_keras.evaluation.report import DriftReport

# The files that mark a folder as a `tune` run directory or a `study` folder.
TUNE_CONFIG = "config.json"
STUDY_CONFIG = "study.json"
REPORTS_DIR = "reports"
# trials.csv's columns besides the searched values: the trial's key and its scores
# (`tuning/objective.py` names them, whatever the task's metric).
TRIAL_KEYS = ("method", "trial")
SCORE_COLUMNS = ("drift_accuracy", "clean_accuracy", "unconstrained_drift_accuracy")
CURVE_PREFIX = "accuracy_sigma_"


@dataclasses.dataclass
class TuneRun:
    """A finished `tune` run directory, as its files hold it.

    Attributes:
        directory: the run directory.
        config: RUN/config.json (every setting of the search).
        reports: `{method: DriftReport}` of RUN/reports/<method>.json, BayesFT first.
        trials: the rows of RUN/trials.csv (`{column: text}`), one per finished trial.
        summary: RUN/summary.md's text, or None.
    """

    directory: Path
    config: dict
    reports: dict
    trials: list
    summary: str = None

    def hyperparameter_names(self):
        """trials.csv's searched values (dropout rates, and the extended space's), in column order."""
        names = []
        for row in self.trials:
            names += [k for k in row if k not in names and _is_hyperparameter(k)]
        return names

    def method_trials(self, method):
        """The rows of one method, in trial order."""
        rows = [r for r in self.trials if r.get("method") == method]
        return sorted(rows, key=lambda r: number(r.get("trial"), 0))


@dataclasses.dataclass
class StudyRun:
    """A finished `study` folder.

    Attributes:
        directory: the study folder.
        study: OUT/study.json (settings, components, seeds, variants).
        table: OUT/table.md's text.
        summary: OUT/summary.md's text.
        plots: `{component: Path}` of the components' PNGs that exist.
    """

    directory: Path
    study: dict
    table: str
    summary: str
    plots: dict


def read_run(directory):
    """A `TuneRun` or `StudyRun` of `directory`.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: a folder that is neither, or a run that has not finished
            (the message says how to finish it).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"Run directory not found: {str(directory)!r}")
    if (directory / STUDY_CONFIG).is_file():
        return _read_study(directory)
    if (directory / TUNE_CONFIG).is_file():
        return _read_tune(directory)
    raise ValueError(
        f"{str(directory)!r} is not a run directory of `bayesft-keras tune` or `study` "
        f"(it has no {TUNE_CONFIG} or {STUDY_CONFIG})."
    )


def _read_tune(directory):
    config = _json(directory / TUNE_CONFIG)
    reports_dir = directory / REPORTS_DIR
    if not (reports_dir / "bayesft.json").is_file():
        raise ValueError(
            f"Run directory {str(directory)!r} has not finished its search (no "
            f"{REPORTS_DIR}/bayesft.json yet): run `bayesft-keras tune` with --dir {directory} to finish it."
        )
    # BayesFT first, then the baselines in the order the run lists them, then any other report.
    baselines = [b for b in config.get("baselines", ()) if isinstance(b, str)]
    found = sorted(p.stem for p in reports_dir.glob("*.json"))
    order = ["bayesft"] + [b for b in baselines if b in found] + [m for m in found if m not in baselines]
    reports = {}
    for method in dict.fromkeys(order):
        if method in found:
            reports[method] = DriftReport.from_json(reports_dir / f"{method}.json")
    trials = []
    if (directory / "trials.csv").is_file():
        with open(directory / "trials.csv", newline="", encoding="utf-8") as f:
            trials = list(csv.DictReader(f))
    summary = directory / "summary.md"
    return TuneRun(
        directory=directory, config=config, reports=reports, trials=trials,
        summary=summary.read_text(encoding="utf-8") if summary.is_file() else None,
    )


def _read_study(directory):
    study = _json(directory / STUDY_CONFIG)
    missing = [name for name in ("table.md", "summary.md") if not (directory / name).is_file()]
    if missing:
        raise ValueError(
            f"Study folder {str(directory)!r} has not finished (no {', '.join(missing)} yet): run "
            f"`bayesft-keras study` with --out {directory} to finish it."
        )
    plots = {}
    for component in study.get("components", ()):
        path = directory / f"{component}.png"
        if path.is_file():
            plots[component] = path
    return StudyRun(
        directory=directory,
        study=study,
        table=(directory / "table.md").read_text(encoding="utf-8"),
        summary=(directory / "summary.md").read_text(encoding="utf-8"),
        plots=plots,
    )


def _json(path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} cannot be read ({' '.join(str(e).split())}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not the run's settings.")
    return data


def _is_hyperparameter(column):
    return column not in TRIAL_KEYS and column not in SCORE_COLUMNS and not column.startswith(CURVE_PREFIX)


def number(text, default=None):
    """A trials.csv cell as a float, or `default` where it is empty or not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return default
