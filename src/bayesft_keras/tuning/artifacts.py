"""The files of a run directory besides Keras Tuner's: config.json, warm start, reports, summary.md.

Every file is written atomically (`bayesft_keras.utils.files`): a killed run, or
the processes of a distributed search writing at once, leave the old file or
the new one, never half of one. trials.csv is the tuners' own
(`tuning.tuner.write_trials_csv`), rewritten after every trial.
"""

import json
import os

from bayesft_keras.tuning.config import TuneConfig
from bayesft_keras.tuning.verdict import verdict_lines
from bayesft_keras.utils import files

METHOD_TITLES = {
    "bayesft": "BayesFT (GP Bayesian optimisation)",
    "random": "random search",
    "uniform": "uniform dropout",
    "no_dropout": "no dropout",
    "noise_injection": "noise-injection training",
    "ftna": "FTNA (error-correcting output codes)",
    "awp": "AWP (adversarial weight perturbation)",
}
CONFIG_FILE = "config.json"
WARM_START_FILE = "warm_start.weights.h5"
REPORTS_DIR = "reports"
SUMMARY_FILE = "summary.md"


def check_same_config(config, directory):
    """A run directory belongs to one configuration: resuming with other settings is refused.

    Only reads: `write_config` writes RUN/config.json once every setting of the
    run has been checked (`run_search`), so that a rejected run never claims a
    directory. Raising `trials` continues the search (the finished trials are
    kept and the budget grows); any other change, a lower `trials` included,
    is refused.

    Returns:
        Whether RUN/config.json must be written: a new directory, or more trials.
    """
    path = directory / CONFIG_FILE
    if not path.exists():
        return True
    current = json.loads(json.dumps(config.to_dict()))
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not the settings")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(
            f"Run directory {str(directory)!r}: {path} cannot be read ({' '.join(str(e).split())}); "
            "use a new --dir."
        ) from None
    defaults = json.loads(json.dumps(TuneConfig().to_dict()))  # settings added since: their default
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k, defaults.get(k)) != current.get(k))
    was = {k: saved.get(k, defaults.get(k)) for k in changed}
    if changed == ["trials"] and _is_count(was["trials"]) and current["trials"] > was["trials"]:
        return True  # more trials: the search goes on from the trials it holds
    if changed:
        details = ", ".join(f"{k}: {was[k]!r} there, {current.get(k)!r} now" for k in changed)
        raise ValueError(
            f"Run directory {str(directory)!r} holds a search with other settings ({details}); "
            "use a new --dir, or the same settings to resume (only --trials may be raised: "
            "that continues the search)."
        )
    return False


def write_config(config, directory):
    """Writes RUN/config.json (atomically): the settings `check_same_config` compares with."""
    current = json.loads(json.dumps(config.to_dict()))
    files.write_text(directory / CONFIG_FILE, json.dumps(current, indent=2))


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool)


def write_report(directory, method, report):
    """RUN/reports/<method>.json and .csv of one method's `DriftReport`."""
    reports = directory / REPORTS_DIR
    files.write_text(reports / f"{method}.json", report.to_json())
    files.write_text(reports / f"{method}.csv", report.to_csv())


def write_summary(result):
    """RUN/summary.md of a `SearchResult` (see `summary_markdown`)."""
    files.write_text(result.directory / SUMMARY_FILE, summary_markdown(result))


def timing_line(timings):
    """One line: where the trials' time went, phase by phase (mean seconds per trial)."""
    from bayesft_keras.tuning.tuner import timing_rows

    mean = timing_rows(timings)
    if not mean:
        return "No trial was timed in this process (resumed trials keep no timings)."
    n = sum(1 for t in timings.values() if "total" in t)
    return (
        f"Time per trial (mean of {n}): {mean['total']:.1f} s = build {mean['build']:.2f} + "
        f"fit {mean['fit']:.1f} + drift objective {mean['score']:.2f} (device copy, compile, "
        f"chips) + save {mean['save']:.2f} + HParams log {mean['hparams']:.2f} + Keras Tuner "
        f"{mean['bookkeeping']:.2f}"
    )


def summary_markdown(result):
    """The comparison table of a `SearchResult`, with the verdicts, BayesFT's rates and the timings."""
    sigma = result.config.sigma
    lines = [
        f"# BayesFT search: {result.config.name}",
        "",
        f"{result.config.arch} on {result.config.dataset}; objective: mean accuracy over "
        f"{result.config.chips} chips at sigma={sigma} (validation split); "
        f"table: test split, {result.config.report_chips} chips.",
        "",
        f"| method | drift accuracy (sigma={sigma}) | clean accuracy | validation objective | trials |",
        "|---|---|---|---|---|",
    ]
    for method, drift, clean, val, trials in result.table_rows():
        lines.append(f"| {METHOD_TITLES[method]} | {drift:.4f} | {clean:.4f} | {val:.4f} | {trials} |")
    verdicts = verdict_lines(result, METHOD_TITLES)
    if verdicts:
        lines += [""] + verdicts
    lines += ["", "Best BayesFT rates:", ""]
    for name, value in result.best.hyperparameters.items():
        lines.append(f"- `{name}` = {value:.3f}")
    timed = [(m, r.timings) for m, r in result.methods.items() if r.timings]
    if timed:
        lines += ["", "Where the time went (trials run by this process):", ""]
        lines += [f"- {METHOD_TITLES[m]}: {timing_line(t)}" for m, t in timed]
    return "\n".join(lines) + "\n"
