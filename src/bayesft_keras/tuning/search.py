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

Distributed (`cluster`, see `distributed`): every process runs this function
with the same settings and directory. Workers run trials and return after the
last search; the chief serves each search's oracle, then writes trials.csv,
best_model.keras and the reports as above.

`run_search` runs its steps top-down: `_set_up` (data, objective,
hypermodels), `_warm_start`, `_tuners` (BayesFT's search, then the
baselines'), `_run_searches` (each search, then its report) and `_finish`
(plot, summary, report.html). The data, the hypermodels and the metric come
from the config's task (`bayesft_keras.tasks`); the files other than Keras
Tuner's are written by `artifacts`, report.html by `bayesft_keras.reporting`.
"""

import contextlib
import dataclasses
import importlib.util
import sys
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from bayesft_keras import tasks
from bayesft_keras.device.presets import tuning_device
from bayesft_keras.tuning import artifacts
from bayesft_keras.tuning import durable
from bayesft_keras.tuning import methods
from bayesft_keras.tuning.artifacts import METHOD_TITLES
from bayesft_keras.tuning.artifacts import WARM_START_FILE
from bayesft_keras.tuning.artifacts import summary_markdown
from bayesft_keras.tuning.artifacts import timing_line
from bayesft_keras.tuning.config import TuneConfig
from bayesft_keras.tuning.objective import DriftObjective
from bayesft_keras.tuning.run_lock import RunLock

__all__ = [
    "METHOD_TITLES",
    "MethodResult",
    "SearchResult",
    "WARM_START_FILE",
    "run_search",
    "summary_markdown",
    "timing_line",
]


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


def _fit_verbose(verbose):
    # A live bar on a terminal, a line per epoch in a log.
    return verbose if not verbose or sys.stdout.isatty() else 2


@dataclasses.dataclass
class _Run:
    """What the steps of one search share."""

    config: TuneConfig
    directory: Path
    verbose: int
    task: tasks.Task
    ds: object
    objective: DriftObjective
    hypermodel: object  # BayesFT's, also the random, uniform and no-dropout baselines'
    injection_hypermodel: object = None  # the noise-injection baseline's, if it runs
    warm_start: str = None  # RUN/warm_start.weights.h5, if trials start from it
    method_metrics: dict = dataclasses.field(default_factory=dict)  # a baseline's own metric


def run_search(config, directory, *, verbose=1, build_hypermodel=None, cluster=None, distribution_strategy=None):
    """Runs (or resumes) the search and the baselines; writes the run directory.

    Args:
        config: a `TuneConfig`.
        directory: the run directory.
        verbose: Keras Tuner / Keras verbosity (0 silent, 1 progress).
        build_hypermodel: optional `f(config, dataset, noise_injection=False)
            -> HyperModel` to replace the task's hypermodel.
        cluster: a `distributed.Cluster` to run as the chief or a worker of a
            distributed search; None for a search in this process alone.
        distribution_strategy: a `tf.distribute` strategy each trial trains
            under (`distributed.mirrored_strategy("mirrored")`), or None.

    Raises:
        RunDirectoryLocked: another process is running a search in `directory`.
        SaveFailed: a file of the run directory could not be written (e.g. a full disk);
            every finished trial is on disk and the same call resumes the search.
    """
    worker = cluster is not None and not cluster.is_chief
    # One search per directory; a distributed search's workers share the chief's.
    with contextlib.nullcontext() if worker else RunLock(directory):
        run = _set_up(config, Path(directory), verbose, build_hypermodel)
        if config.warm_start_epochs:
            _warm_start(run)
        tuners = methods.tuners(run, _tuner_options(run, distribution_strategy, worker))
        results, trials_run = _run_searches(run, tuners, cluster)
        if worker:
            return SearchResult(config=config, directory=run.directory, methods={}, worker_trials=trials_run)
        return _finish(run, results)


def _set_up(config, directory, verbose, build_hypermodel):
    """The run directory, the seed, the task's data, the objective and the hypermodels.

    RUN/config.json is written last, once the data has loaded and the hypermodels
    are built: a run refused for a bad setting (an unknown dataset, initial rates
    that do not fit) leaves the directory free for the corrected command.
    """
    new_settings = artifacts.check_same_config(config, directory)  # reads only
    keras.utils.set_random_seed(config.seed)
    task = tasks.get(config.task)
    ds = task.load_data(config)
    build_hypermodel = build_hypermodel or task.build_hypermodel
    _, _, param, device_values = tuning_device(config)
    objective = DriftObjective(
        sigma=config.sigma,
        chips=config.chips,
        sigma_range=config.sigma_range,
        sigma_points=config.sigma_points,
        min_clean_accuracy=config.min_clean_accuracy,
        # Each trial's logged curve spans the final reports' sigma range.
        curve_sigmas=device_values
        or tuple(np.round(np.linspace(*config.report_sigmas[:2], config.trial_curve_points), 10)),
        param=param,
        seed=config.seed,
        metric=task.metric(),
    )
    hypermodel = build_hypermodel(config, ds)
    injection_hypermodel = None
    if "noise_injection" in config.baselines:
        injection_hypermodel = build_hypermodel(config, ds, noise_injection=True)
    methods.initial_values(config, hypermodel)  # raises on initial rates that do not fit the dropout sites
    directory.mkdir(parents=True, exist_ok=True)
    if new_settings:
        artifacts.write_config(config, directory)
    return _Run(
        config=config, directory=directory, verbose=verbose, task=task, ds=ds, objective=objective,
        hypermodel=hypermodel, injection_hypermodel=injection_hypermodel,
    )


def _warm_start(run):
    """Trains the network without dropout once (kept in RUN/warm_start.weights.h5) and
    starts both hypermodels from it. A resumed run reuses the file."""
    config, hypermodel = run.config, run.hypermodel
    path = run.directory / WARM_START_FILE
    if not path.exists():
        if run.verbose:
            print(f"\n== warm start: {config.arch} without dropout, {config.warm_start_epochs} epochs ==")
        hp = methods.fixed_rates(hypermodel, 0.0)
        model = hypermodel.build(hp)
        hypermodel.fit(
            hp, model, run.ds.x_train, run.ds.y_train, epochs=config.warm_start_epochs,
            verbose=_fit_verbose(run.verbose),
        )
        # Atomic: a distributed run's processes each train the same weights, and never read half a file.
        durable.save_model(model, path, weights_only=True)
    run.warm_start = str(path)
    for model in (run.hypermodel, run.injection_hypermodel):
        if model is not None:
            model.initial_weights = run.warm_start


def _tuner_options(run, distribution_strategy, worker):
    """The keyword arguments every tuner of the run shares, with the HParams log over the joint space."""
    from bayesft_keras.tuning.hparams_log import HParamsLogger

    space = keras_tuner.HyperParameters()
    run.hypermodel.declare_hyperparameters(space)
    if run.injection_hypermodel is not None:
        run.injection_hypermodel.declare_hyperparameters(space)
    # TensorBoard's HParams log needs TensorFlow; a JAX or torch machine without it tunes without the log.
    logger = None
    if importlib.util.find_spec("tensorflow") is not None:
        logger = HParamsLogger(run.directory / "tb", space, run.objective.curve_sigmas)
    elif run.verbose:
        print("TensorFlow is not installed: no TensorBoard HParams log in RUN/tb.")
    return dict(
        objective_spec=run.objective,
        validation_data=(run.ds.x_val, run.ds.y_val),
        hparams_logger=logger,
        # A worker cannot read the oracle's trials; the chief writes the file.
        trials_csv=None if worker else run.directory / "trials.csv",
        directory=str(run.directory / "kt"),
        overwrite=False,
        seed=run.config.seed, distribution_strategy=distribution_strategy, compile_once=run.config.compile_once,
    )


def _run_searches(run, tuners, cluster):
    """Runs each search in turn and reports it; returns (method -> `MethodResult`, method -> trials
    run here). A chief serves every search's oracle and reports once all are over, so that
    workers never wait for reports; a worker reports nothing."""
    from bayesft_keras.tuning import distributed
    from bayesft_keras.tuning.tuner import write_trials_csv

    directory, verbose = run.directory, run.verbose
    worker = cluster is not None and not cluster.is_chief
    results = {}
    served = {}  # chief: method -> tuner, reported after the last search
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
                tuner.search(run.ds.x_train, run.ds.y_train, verbose=_fit_verbose(verbose))
                if verbose and tuner.timings:
                    print(timing_line(tuner.timings))
            if worker:
                trials_run[method] = len(tuner.timings)
            else:
                results[method] = _report_method(run, method, tuner)
    for method, tuner in served.items():
        results[method] = _report_method(run, method, tuner)
    return results, trials_run


def _report_method(run, method, tuner):
    """The drift report (test split) of a method's best model, in RUN/reports; BayesFT's model
    also in RUN/best_model.keras."""
    from bayesft_keras.evaluation import evaluate_drift

    config = run.config
    best_trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(best_trial)
    if method == "bayesft":
        model.save(run.directory / "best_model.keras")
    report = evaluate_drift(
        model,
        (run.ds.x_test, run.ds.y_test),
        values=_report_sigmas(config),
        param=run.objective.param,
        chips=config.report_chips,
        seed=config.seed,
        metric=run.method_metrics.get(method, run.objective.metric),
        name=METHOD_TITLES[method],
        progress=bool(run.verbose),
    )
    artifacts.write_report(run.directory, method, report)
    return MethodResult(
        method=method,
        hyperparameters=dict(best_trial.hyperparameters.values),
        validation_score=float(best_trial.score),
        report=report,
        trials=len(tuner.completed_trials()),
        timings=dict(tuner.timings),
    )


def _finish(run, results):
    """The comparison plot, RUN/summary.md and RUN/report.html of the reported methods."""
    from bayesft_keras.evaluation import plot_reports
    from bayesft_keras.reporting import write_report

    chance = run.task.chance(run.ds)
    path = run.directory / artifacts.REPORTS_DIR / "comparison.png"
    plot_reports([r.report for r in results.values()], path, chance=chance, target=run.config.sigma)
    result = SearchResult(config=run.config, directory=run.directory, methods=results, chance=chance)
    artifacts.write_summary(result)
    write_report(run.directory, chance=chance)
    return result
