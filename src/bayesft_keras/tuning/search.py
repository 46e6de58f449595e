"""One `bayesft-keras tune` run: the BayesFT search, its baselines and the run directory.

Run directory layout::

    RUN/
      config.json             the settings of the run
      kt/<method>/            Keras Tuner's state: oracle, trials, each trial's model
      trials.csv              every finished trial of every method: rates and scores
      best_model.keras        BayesFT's best model, with its ReRAM layers
      reports/<method>.json   drift reports (test split) of each method's best model
      reports/<method>.csv
      reports/comparison.png  their drift curves on one plot
      summary.md              the comparison table
      tb/                     TensorBoard HParams view (tensorboard --logdir RUN/tb)

Running again with the same directory resumes: finished trials are kept, an
interrupted trial is run again, finished searches are not repeated.

Distributed (``cluster``, see `distributed`): every process runs this function
with the same settings and directory. Workers run trials and return after the
last search; the chief serves each search's oracle, then writes trials.csv,
best_model.keras and the reports as above.
"""

import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from bayesft_keras import tasks
from bayesft_keras.device.presets import tuning_device
from bayesft_keras.tuning.config import TuneConfig
from bayesft_keras.tuning.objective import OBJECTIVE_NAME
from bayesft_keras.tuning.objective import DriftObjective
from bayesft_keras.tuning.verdict import verdict_lines

METHOD_TITLES = {
    "bayesft": "BayesFT (GP Bayesian optimisation)",
    "random": "random search",
    "uniform": "uniform dropout",
    "no_dropout": "no dropout",
    "noise_injection": "noise-injection training",
    "ftna": "FTNA (error-correcting output codes)",
    "awp": "AWP (adversarial weight perturbation)",
}


@dataclasses.dataclass
class MethodResult:
    method: str
    hyperparameters: dict
    validation_score: float
    report: object  # DriftReport on the test split
    trials: int
    timings: dict = dataclasses.field(default_factory=dict)  # trial_id -> seconds per phase


@dataclasses.dataclass
class SearchResult:
    config: TuneConfig
    directory: Path
    methods: dict  # method -> MethodResult (empty on a worker of a distributed search)
    worker_trials: dict = dataclasses.field(default_factory=dict)  # on a worker: method -> trials it ran
    chance: float = None  # the task's score of guessing (1 / classes), or None (`Task.chance`)

    @property
    def best(self):
        return self.methods["bayesft"]

    def table_rows(self):
        """(method, drift accuracy at sigma on test, clean test accuracy, validation score, trials)."""
        sigma = self.config.sigma
        rows = []
        for name, result in self.methods.items():
            rows.append(
                (
                    name,
                    _mean_at(result.report, sigma),
                    float(result.report.clean),
                    result.validation_score,
                    result.trials,
                )
            )
        return rows


def _mean_at(report, sigma):
    values = np.asarray(report.values, dtype=float)
    index = int(np.argmin(np.abs(values - sigma)))
    return float(report.mean()[index])


def _report_sigmas(config):
    start, stop, count = config.report_sigmas
    values = set(np.round(np.linspace(start, stop, int(count)), 10).tolist())
    device_values = tuning_device(config)[3]
    if device_values is not None:  # a device preset's own sweep (e.g. times)
        values = set(device_values)
    values.add(round(float(config.sigma), 10))
    return sorted(values)


class _FixedRatesHyperParameters:
    """Hyperparameters that pin every dropout site of a hypermodel to one rate
    (and the extended space's recipe values to the recipe's own)."""

    @staticmethod
    def make(hypermodel, rate):
        recipe = hypermodel.recipe_values() if hasattr(hypermodel, "recipe_values") else {}
        hp = keras_tuner.HyperParameters()
        for name in hypermodel.hyperparameter_names():
            hp.Fixed(name, float(recipe.get(name, rate)))
        return hp


def _initial_values(config, hypermodel):
    """The hand-picked first trial: ``config.initial_rates`` (one per site, in order) or the
    centre of every range, and the recipe's own values of an extended space."""
    values = dict(hypermodel.recipe_values()) if hasattr(hypermodel, "recipe_values") else {}
    if config.initial_rates is not None:
        names = hypermodel.hyperparameter_names()[: len(hypermodel.sites)]
        if len(config.initial_rates) != len(names):
            raise ValueError(
                f"`initial_rates` needs one rate per dropout site of {config.arch} "
                f"({', '.join(hypermodel.sites)}). Received: initial_rates={list(config.initial_rates)}"
            )
        values.update(zip(names, (float(r) for r in config.initial_rates)))
    return values


WARM_START_FILE = "warm_start.weights.h5"


def _warm_start(config, directory, hypermodel, ds, verbose):
    """Trains ``hypermodel``'s network without dropout once (kept in RUN/warm_start.weights.h5);
    returns the file's path. A resumed run reuses the file."""
    path = directory / WARM_START_FILE
    if path.exists():
        return path
    if verbose:
        print(f"\n== warm start: {config.arch} without dropout, {config.warm_start_epochs} epochs ==")
    hp = _FixedRatesHyperParameters.make(hypermodel, 0.0)
    model = hypermodel.build(hp)
    hypermodel.fit(
        hp, model, ds.x_train, ds.y_train, epochs=config.warm_start_epochs,
        verbose=verbose if not verbose or sys.stdout.isatty() else 2,
    )
    # Atomic: a run killed here leaves no half file (and a distributed run's
    # processes, which each train the same weights, never read one).
    tmp = path.with_name(f"warm_start.{os.getpid()}.tmp.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, path)
    return path


def run_search(config, directory, *, verbose=1, build_hypermodel=None, cluster=None, distribution_strategy=None):
    """Runs (or resumes) the search and the baselines; writes the run directory.

    Args:
        config: a `TuneConfig`.
        directory: the run directory.
        verbose: Keras Tuner / Keras verbosity (0 silent, 1 progress).
        build_hypermodel: optional ``f(config, dataset, noise_injection=False)
            -> HyperModel`` to replace the architecture zoo's hypermodel.
        cluster: a `distributed.Cluster` to run as the chief or a worker of a
            distributed search; None for a search in this process alone.
        distribution_strategy: a `tf.distribute` strategy each trial trains
            under (`distributed.mirrored_strategy("mirrored")`), or None.
    """
    from bayesft_keras.tuning import distributed

    from bayesft_keras.evaluation import evaluate_drift
    from bayesft_keras.evaluation import plot_reports
    from bayesft_keras.tuning.hparams_log import HParamsLogger

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _check_same_config(config, directory)
    keras.utils.set_random_seed(config.seed)

    task = tasks.get(config.task)
    ds = task.load_data(config)
    build_hypermodel = build_hypermodel or task.build_hypermodel
    metric = task.metric()
    objective = DriftObjective(
        sigma=config.sigma,
        chips=config.chips,
        sigma_range=config.sigma_range,
        sigma_points=config.sigma_points,
        min_clean_accuracy=config.min_clean_accuracy,
        # Each trial's logged curve spans the final reports' sigma range.
        curve_sigmas=tuning_device(config)[3]
        or tuple(np.round(np.linspace(*config.report_sigmas[:2], config.trial_curve_points), 10)),
        param=tuning_device(config)[2],
        seed=config.seed,
        metric=metric,
    )
    main_hypermodel = build_hypermodel(config, ds)
    injection_hypermodel = (
        build_hypermodel(config, ds, noise_injection=True)
        if "noise_injection" in config.baselines
        else None
    )
    warm_start = None
    if config.warm_start_epochs:
        warm_start = str(_warm_start(config, directory, main_hypermodel, ds, verbose))
        for hypermodel in (main_hypermodel, injection_hypermodel):
            if hypermodel is not None:
                hypermodel.initial_weights = warm_start
    space = keras_tuner.HyperParameters()
    main_hypermodel.declare_hyperparameters(space)
    if injection_hypermodel is not None:
        injection_hypermodel.declare_hyperparameters(space)
    # TensorBoard's HParams log needs TensorFlow; a JAX or torch machine without it tunes without the log.
    logger = None
    if importlib.util.find_spec("tensorflow") is not None:
        logger = HParamsLogger(directory / "tb", space, objective.curve_sigmas)
    elif verbose:
        print("TensorFlow is not installed: no TensorBoard HParams log in RUN/tb.")

    common = dict(
        objective_spec=objective,
        validation_data=(ds.x_val, ds.y_val),
        hparams_logger=logger,
        trials_csv=directory / "trials.csv",
        directory=str(directory / "kt"),
        overwrite=False,
        seed=config.seed,
        distribution_strategy=distribution_strategy,
    )
    worker = cluster is not None and not cluster.is_chief
    if worker:
        common["trials_csv"] = None  # a worker cannot read the oracle's trials; the chief writes the file
    from bayesft_keras.tuning.tuner import BayesFTTuner
    from bayesft_keras.tuning.tuner import DriftRandomSearch
    from bayesft_keras.tuning.tuner import write_trials_csv

    tuners = {
        "bayesft": lambda: BayesFTTuner(
            main_hypermodel,
            max_trials=config.trials,
            num_initial_points=config.initial_points,
            initial_values=_initial_values(config, main_hypermodel),
            project_name="bayesft",
            method="bayesft",
            **common,
        )
    }
    if "random" in config.baselines:
        tuners["random"] = lambda: DriftRandomSearch(
            main_hypermodel, max_trials=config.trials, project_name="random", method="random", **common
        )
    for method, rate in (("uniform", config.uniform_rate), ("no_dropout", 0.0)):
        if method in config.baselines:
            tuners[method] = lambda rate=rate, method=method: DriftRandomSearch(
                main_hypermodel,
                max_trials=1,
                hyperparameters=_FixedRatesHyperParameters.make(main_hypermodel, rate),
                tune_new_entries=False,
                project_name=method,
                method=method,
                **common,
            )
    if injection_hypermodel is not None:
        tuners["noise_injection"] = lambda: BayesFTTuner(
            injection_hypermodel,
            max_trials=config.trials,
            num_initial_points=min(config.initial_points, config.trials),
            hyperparameters=_FixedRatesHyperParameters.make(main_hypermodel, 0.0),
            project_name="noise_injection",
            method="noise_injection",
            **common,
        )

    # The paper's own baselines: one trial each, no dropout, the authors' settings
    # (bayesft_keras.baselines); FTNA is scored by decoding its codewords.
    method_metrics = {}
    for method in ("ftna", "awp"):
        if method in config.baselines:
            hypermodel = task.baseline_hypermodel(config, ds, method)
            hypermodel.initial_weights = warm_start  # FTNA's 7-output head keeps its initialization
            method_metrics[method] = hypermodel.metric()
            tuners[method] = lambda hypermodel=hypermodel, method=method: DriftRandomSearch(
                hypermodel,
                max_trials=1,
                hyperparameters=_FixedRatesHyperParameters.make(hypermodel, 0.0),
                tune_new_entries=False,
                project_name=method,
                method=method,
                **dict(common, objective_spec=dataclasses.replace(objective, metric=method_metrics[method])),
            )

    report_sigmas = _report_sigmas(config)
    reports_dir = directory / "reports"

    def report_method(method, tuner):
        best_trial = tuner.oracle.get_best_trials(1)[0]
        model = tuner.load_model(best_trial)
        if method == "bayesft":
            model.save(directory / "best_model.keras")
        report = evaluate_drift(
            model,
            (ds.x_test, ds.y_test),
            values=report_sigmas,
            param=objective.param,
            chips=config.report_chips,
            seed=config.seed,
            metric=method_metrics.get(method, metric),
            name=METHOD_TITLES[method],
            progress=bool(verbose),
        )
        reports_dir.mkdir(exist_ok=True)
        report.to_json(reports_dir / f"{method}.json")
        report.to_csv(reports_dir / f"{method}.csv")
        return MethodResult(
            method=method,
            hyperparameters=dict(best_trial.hyperparameters.values),
            validation_score=float(best_trial.score),
            report=report,
            trials=len(tuner.completed_trials()),
            timings=dict(tuner.timings),
        )

    fit_verbose = verbose if not verbose or sys.stdout.isatty() else 2  # live bar on a terminal, a line per epoch in a log
    results = {}
    served = {}  # chief: searches to report once all are over, so that workers never wait for reports
    trials_run = {}  # worker: method -> trials run here
    with contextlib.ExitStack() as stack:
        servers = stack.enter_context(distributed.OracleServers()) if cluster and cluster.is_chief else None
        for index, (method, make) in enumerate(tuners.items()):
            with cluster.activate(index) if cluster else distributed.local_resume(directory / "kt" / method):
                tuner = make()
                if verbose:
                    print(f"\n== {METHOD_TITLES[method]}: {tuner.oracle.max_trials} trial(s) ==")
                if servers is not None:
                    tuner.oracle.verbose = verbose
                    servers.serve(
                        tuner, cluster.host, cluster.port_of(index),
                        on_trial_end=lambda trial, tuner=tuner: write_trials_csv(tuner, directory / "trials.csv"),
                    )
                    write_trials_csv(tuner, directory / "trials.csv")
                    served[method] = tuner
                    continue
                tuner.search(ds.x_train, ds.y_train, verbose=fit_verbose)
                if verbose and tuner.timings:
                    print(timing_line(tuner.timings))
            if worker:
                trials_run[method] = len(tuner.timings)
            else:
                results[method] = report_method(method, tuner)
    if worker:
        return SearchResult(config=config, directory=directory, methods={}, worker_trials=trials_run)
    for method, tuner in served.items():
        results[method] = report_method(method, tuner)
    plot_reports([r.report for r in results.values()], directory / "reports" / "comparison.png")
    chance = task.chance(ds)
    result = SearchResult(config=config, directory=directory, methods=results, chance=chance)
    (directory / "summary.md").write_text(summary_markdown(result))
    return result


def _check_same_config(config, directory):
    """A run directory belongs to one configuration: resuming with other settings is refused."""
    path = directory / "config.json"
    current = json.loads(json.dumps(config.to_dict()))
    if path.exists():
        saved = json.loads(path.read_text())
        defaults = json.loads(json.dumps(TuneConfig().to_dict()))  # settings added since: their default
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k, defaults.get(k)) != current.get(k))
        if changed:
            raise ValueError(
                f"Run directory {str(directory)!r} holds a search with other settings "
                f"({', '.join(changed)}); use a new --dir or the same settings to resume."
            )
    else:
        # Atomic: the processes of a distributed search all write it at once.
        tmp = path.with_name(f"config.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=2))
        os.replace(tmp, path)


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
