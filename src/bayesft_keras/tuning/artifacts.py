"""The files of a run directory besides Keras Tuner's: config.json, warm start, reports, summary.md.

Every file is written atomically (`bayesft_keras.utils.files`): a killed run, or
the processes of a distributed search writing at once, leave the old file or
the new one, never half of one. trials.csv is the tuners' own
(`tuning.tuner.write_trials_csv`), rewritten after every trial.

Each trial saves its trained model; once a search is over, `keep_best_models`
deletes all but the best trial's: the main job's run directory held 9 trial
models of 5.5 MB (59 MB in all), it now holds 2 (22 MB). A resume needs only the
trials' `trial.json`, the oracle's `oracle.json`, the warm start and the best
trial's model (`trial_files` of `tuning.tuner`). summary.md ends with what each
file is (`RUN_FILES`).
"""

import json
import os
from pathlib import Path

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


# What each file of a run directory is, in the order summary.md lists them.
RUN_FILES = (
    ("summary.md", "this page: the comparison table, the verdict, BayesFT's rates, where the time went"),
    (CONFIG_FILE, "the settings of the run; a resume with other settings is refused (only --trials may grow)"),
    ("trials.csv", "every finished trial of every method: its rates and scores"),
    ("report.html", "one page with all of it, plots inline: open it in a browser (`bayesft-keras report RUN` rewrites it)"),
    ("best_model.keras", "BayesFT's best network, with its ReRAM layers (`keras.models.load_model`)"),
    ("best_model_plain.keras", "with `--model`: the same network in Keras's own layers, its rates in its dropout layers"),
    (WARM_START_FILE, "the network trained once without dropout that every trial starts from (resume needs it)"),
    (f"{REPORTS_DIR}/<method>.json, .csv", "the drift report (test split) of each method's best network"),
    (f"{REPORTS_DIR}/comparison.png", "their drift curves on one plot, mean with p5-p95 band"),
    ("kt/<method>/oracle.json, tuner0.json", "Keras Tuner's state of each search (resume needs it)"),
    ("kt/<method>/trial_<id>/trial.json", "each trial: its rates, scores and status (resume needs it)"),
    ("kt/<method>/trial_<id>/drift_report.json", "each trial's drift curve on the validation split"),
    ("kt/<method>/trial_<id>/model.keras", "the trained network of each search's best trial only (resume and the reports need it)"),
    ("tb/", "the TensorBoard HParams view: `tensorboard --logdir RUN/tb`"),
)


def keep_best_models(tuner):
    """Deletes the saved model of every finished trial of `tuner` but the best one's.

    Only the best trial's model is ever read again (the final report, `best_model.keras`),
    and a resume needs no other (`trial_files` of `tuning.tuner`). Called once a search is
    over, by the process that reports it: a running trial's model is never touched.

    Returns:
        The number of model files deleted.
    """
    from bayesft_keras.tuning.tuner import MODEL_FILE

    best = tuner.oracle.get_best_trials(1)
    keep = {best[0].trial_id} if best else set()
    deleted = 0
    for trial in tuner.completed_trials():
        path = Path(tuner.get_trial_dir(trial.trial_id)) / MODEL_FILE
        if trial.trial_id not in keep and path.exists():
            path.unlink()
            deleted += 1
    return deleted


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
    lines += ["", "## Files of this run directory", ""]
    lines += [f"- `{name}`: {what}" for name, what in run_files(result.config)]
    return "\n".join(lines) + "\n"


def run_files(config):
    """(name, description) of each file a run of `config` writes (`RUN_FILES`, less the warm
    start when the run has none)."""
    return [(n, w) for n, w in RUN_FILES if n != WARM_START_FILE or config.warm_start_epochs > 0]
