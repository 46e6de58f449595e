"""Keras Tuner tuners whose objective is accuracy on simulated drifted chips.

`DriftScoredTuner` is the shared part: a trial builds the HyperModel, trains it
(quantization-aware at the device's bits), scores it with `DriftObjective` on
the validation data, saves the trained model in the trial's directory and
returns the metrics to the oracle. Mixed into Keras Tuner's own tuners it gives
`BayesFTTuner` (Gaussian-process Bayesian optimisation, the paper's method, with
`BayesFTOracle` from `bayesft_keras.tuning.oracle`) and
`DriftRandomSearch` (the random-search baseline on the same budget).
"""

import csv
import io
import time
from pathlib import Path

import keras
import keras_tuner

from bayesft_keras.device import seeds
from bayesft_keras.tuning import distributed
from bayesft_keras.tuning import durable
from bayesft_keras.tuning import group as group_lib
from bayesft_keras.tuning import reuse
from bayesft_keras.tuning.objective import OBJECTIVE_NAME
from bayesft_keras.tuning.objective import DriftObjective
from bayesft_keras.tuning.oracle import BayesFTOracle
from bayesft_keras.tuning.oracle import DriftRandomSearchOracle
from bayesft_keras.utils import files

MODEL_FILE = "model.keras"


def drift_objective():
    return keras_tuner.Objective(OBJECTIVE_NAME, direction="max")


class DriftScoredTuner(durable.DurableTunerMixin):
    """Mixin for a `keras_tuner.Tuner`: drift-scored trials, saved models, logs.

    Its run directory survives kills and full disks (`bayesft_keras.tuning.durable`), and a
    trial's randomness (weights, dropout masks, batch order) derives from `trial_seed`, the
    method and the trial's id alone, so a resumed or distributed search gives each trial
    the result of the uninterrupted one.

    Args:
        objective_spec: a `DriftObjective` (how trained models are scored).
        validation_data: `(x, y)` the drift objective is measured on.
        method: a name for this search in logs and tables (e.g. "bayesft").
        hparams_logger: optional `HParamsLogger` for TensorBoard.
        trials_csv: optional path of a CSV with every finished trial.
        trial_seed: seeds every trial through `bayesft_keras.device.seeds.trial_seed`;
            None leaves the process's random state as it is.
        compile_once: True: every trial trains and scores one shared model, traced and
            compiled once per search (`bayesft_keras.tuning.reuse`); an error if the
            hypermodel's trials differ in architecture. "auto" (default): so when they do
            not, else a new model per trial, and a line that says why. False: a new model
            per trial.
        trials_at_once: how many trials train together with one compiled step
            (`bayesft_keras.tuning.group`; TensorFlow and JAX): the oracle proposes that many
            at once. "auto": on a JAX GPU, as many as fit in half its free memory (at
            most 8, and 1 for networks over 2 M parameters); else 1. Needs trials that share one
            model (`compile_once`) and training arrays; otherwise one at a time, with a line
            that says why.
        **kwargs: the arguments of the Keras Tuner tuner.
    """

    def __init__(
        self,
        *args,
        objective_spec=None,
        validation_data=None,
        method="bayesft",
        hparams_logger=None,
        trials_csv=None,
        trial_seed=None,
        compile_once="auto",
        trials_at_once=1,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.compile_once = reuse.check_compile_once(compile_once)
        self._shared = None  # the `SharedTrialModel`, made at the first trial
        self.trials_at_once = group_lib.check_trials_at_once(trials_at_once)
        self._group = None  # the `TrialGroup` of a search in groups
        self._grouped = {}  # trial_id -> (its trained copy, timings) or the group's error
        if self.compile_once is True and self._reuse_blocker() is not None:
            raise ValueError(
                f"`compile_once=True`, but this search's trials cannot share one model: {self._reuse_blocker()}."
            )
        distributed.secure_worker_oracle(self)  # a worker's calls to the chief carry the run's token
        self.trial_seed = trial_seed
        self.objective_spec = objective_spec or DriftObjective()
        if validation_data is None:
            raise ValueError("`validation_data` (x, y) is required: the drift objective is measured on it.")
        self.validation_data = validation_data
        self.method = method
        self.hparams_logger = hparams_logger
        self.trials_csv = Path(trials_csv) if trials_csv else None
        # trial_id -> seconds: "build", "fit", "score" (the drift objective: device
        # copy, compile and chips), "save" (model.save and the trial's report),
        # "hparams" (TensorBoard log), "total" (the whole trial, Keras Tuner's
        # bookkeeping and the oracle included; see `timing_rows`)
        self.timings = {}

    def on_trial_begin(self, trial):
        self._trial_started = time.perf_counter()
        self._trial_metrics = None
        if self._is_worker():  # the chief's oracle logs trials; a worker's log says which it runs
            print(distributed.trial_started_line(self.tuner_id, self.method, trial), flush=True)
        super().on_trial_begin(trial)

    def _seed_trial(self, trial):
        if self.trial_seed is not None:
            keras.utils.set_random_seed(seeds.trial_seed(self.trial_seed, self.method, trial.trial_id))

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        start = time.perf_counter()
        self._seed_trial(trial)
        shared = self._shared_model()
        if trial.trial_id in self._grouped:  # trained with its group (`search` in groups)
            result = self._grouped.pop(trial.trial_id)
            if isinstance(result, Exception):
                raise result
            trained_copy, timing = result
            model = shared.model_like(trained_copy)
        else:
            # Under a tf.distribute strategy (data-parallel training) when one is given;
            # fit too, as it may compile again (the one-cycle schedule needs the step count).
            with keras_tuner.engine.tuner.maybe_distribute(self.distribution_strategy):
                model = self.hypermodel.build(hp) if shared is None else shared.model_for(hp)
                built = time.perf_counter()
                self.hypermodel.fit(hp, model, *args, **kwargs)
            timing = {"build": built - start, "fit": time.perf_counter() - built}
        scoring = time.perf_counter()
        evaluator = None if shared is None else shared.evaluator_for(model, self.objective_spec.metric)
        metrics, report = self.objective_spec.evaluate(model, *self.validation_data, evaluator=evaluator)
        scored = time.perf_counter()
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        with durable.saving(trial_dir):
            trial_dir.mkdir(parents=True, exist_ok=True)
            durable.save_model(model, trial_dir / MODEL_FILE)
            report.to_json(trial_dir / "drift_report.json")
        saved = time.perf_counter()
        if self.hparams_logger is not None:
            with durable.saving(self.hparams_logger.logdir):
                self.hparams_logger.log_trial(
                    f"{self.method}_{trial.trial_id}", dict(hp.values), metrics
                )
        self.timings[trial.trial_id] = {
            **timing,
            "train": timing["build"] + timing["fit"],
            "score": scored - scoring,
            "save": saved - scored,
            "hparams": time.perf_counter() - saved,
        }
        self._trial_metrics = metrics
        return metrics

    # -- several trials at once -------------------------------------------------

    def search(self, *fit_args, **fit_kwargs):
        size = self._group_size(fit_args, fit_kwargs)
        if size == 1:
            return super().search(*fit_args, **fit_kwargs)
        if "verbose" in fit_kwargs and not self._is_worker():
            self.oracle.verbose = fit_kwargs["verbose"]
        self.on_search_begin()
        status = keras_tuner.engine.trial.TrialStatus
        stopped = False
        while not stopped:
            trials, idle = [], False
            # Keras Tuner's way of giving trials to several workers, here to the places of a group.
            for place in range(size):
                self.pre_create_trial()
                trial = self.oracle.create_trial(f"{self.tuner_id}-{place}")
                if trial.status == status.STOPPED:
                    stopped = True
                    break
                if trial.status == status.RUNNING:
                    trials.append(trial)
                idle = idle or trial.status == status.IDLE
            if not trials:
                if idle and not stopped:
                    continue  # the oracle is busy (a distributed chief): ask again, as Keras Tuner does
                break
            self._train_group(trials, *fit_args, **fit_kwargs)
            for trial in trials:
                self.on_trial_begin(trial)
                self._try_run_and_update_trial(trial, *fit_args, **fit_kwargs)
                self.on_trial_end(trial)
        self.on_search_end()

    def _group_size(self, fit_args, fit_kwargs):
        size = self.trials_at_once
        if size == "auto":
            size = group_lib.auto_size(self.hypermodel, fit_kwargs.get("batch_size") or self.hypermodel.batch_size)
        if size == 1:
            return 1
        blocker = group_lib.data_blocker(fit_args, fit_kwargs) or (
            "compile_once=False" if self.compile_once is False else self._reuse_blocker()
        )
        if blocker is not None:
            print(f"{self.method}: one trial at a time ({blocker}).", flush=True)
            return 1
        self._places = size
        return size

    def _train_group(self, trials, x, y, **fit_kwargs):
        """Trains `trials` together; `run_trial` then scores and saves each."""
        start = time.perf_counter()
        shared = self._shared_model()
        models, order_seeds = [], []
        for trial in trials:
            self._seed_trial(trial)  # as the trial alone: its weights, rates, seed states, batch order
            models.append(self.hypermodel.build(trial.hyperparameters))
            order_seeds.append(group_lib.order_seed(fit_kwargs.get("shuffle", True)))
        shared.adopt(models[0])
        if self._group is None:
            self._group = group_lib.TrialGroup(self.hypermodel, self._places)
        built = time.perf_counter()
        try:
            copies = self._group.train(models, order_seeds, x, y, **fit_kwargs)
        except keras_tuner.errors.FatalError:
            raise
        except Exception as error:  # every trial of the group fails with it, as it would alone
            self._grouped.update({t.trial_id: error for t in trials})
            return
        n = len(trials)
        timing = {"build": (built - start) / n, "fit": (time.perf_counter() - built) / n, "group": n}
        self._grouped.update({t.trial_id: (c, dict(timing)) for t, c in zip(trials, copies)})

    def _shared_model(self):
        """The search's `SharedTrialModel`, or None when every trial builds its own model."""
        if self._shared is not None or self.compile_once is False:
            return self._shared
        blocker = self._reuse_blocker()
        if blocker is None:
            self._shared = reuse.SharedTrialModel(self.hypermodel)
        else:
            print(f"{self.method}: one model per trial ({blocker}).", flush=True)
            self.compile_once = False
        return self._shared

    def _reuse_blocker(self):
        if self.distribution_strategy is not None:
            return "a tf.distribute strategy trains each trial"
        return reuse.reuse_blocker(self.hypermodel)

    def trial_files(self, trial):
        # Only the best finished trial must keep its model: a `tune` run deletes the others'
        # after the search (`artifacts.keep_best_models`). Without it (a damaged disk) the
        # trial runs again on resume, with its own rates, rather than failing the final report.
        best = self.oracle.get_best_trials(1)
        if not best or best[0].trial_id != trial.trial_id:
            return []
        return [Path(self.get_trial_dir(trial.trial_id)) / MODEL_FILE]

    def load_model(self, trial):
        path = Path(self.get_trial_dir(trial.trial_id)) / MODEL_FILE
        if not path.is_file() or path.stat().st_size == 0:
            raise ValueError(
                f"Trial {trial.trial_id} ({trial.status}) has no saved model: {path} is missing or "
                "empty. Its trial.json holds any error; a `tune` run keeps the best trial's model "
                "only, and a resume trains the best trial again when its model is damaged."
            )
        return keras.models.load_model(path)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle records the trial on disk first
        if self.trials_csv is not None:
            write_trials_csv(self, self.trials_csv)
        if trial.trial_id in self.timings:
            timing = self.timings[trial.trial_id]
            timing["total"] = time.perf_counter() - self._trial_started
            if "group" in timing:  # its share of the group's training came before the trial began
                timing["total"] += timing["build"] + timing["fit"]
        if self._is_worker():
            print(distributed.trial_ended_line(self.tuner_id, self.method, trial, self._trial_metrics), flush=True)

    def completed_trials(self):
        return [
            t
            for t in self.oracle.trials.values()
            if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED
        ]


TIMING_PHASES = ("build", "fit", "score", "save", "hparams", "bookkeeping", "total")


def timing_rows(timings):
    """Mean seconds per trial of each phase in `TIMING_PHASES` over `timings` (a tuner's
    `timings`); "bookkeeping" is the rest of a trial: Keras Tuner's own (oracle,
    trial files, callbacks)."""
    rows = [t for t in timings.values() if "total" in t and "fit" in t]
    if not rows:
        return {}
    mean = {p: float(sum(t[p] for t in rows) / len(rows)) for p in TIMING_PHASES if p != "bookkeeping"}
    mean["bookkeeping"] = mean["total"] - sum(mean[p] for p in ("build", "fit", "score", "save", "hparams"))
    return mean


def write_trials_csv(tuner, path):
    """Rewrites `path` with this tuner's finished trials (other methods' rows are kept)."""
    path = Path(path)
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("method") != tuner.method]
    for trial in sorted(tuner.completed_trials(), key=lambda t: int(t.trial_id)):
        row = {"method": tuner.method, "trial": trial.trial_id}
        row.update({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in trial.hyperparameters.values.items()})
        for name, obs in trial.metrics.metrics.items():
            row[name] = f"{obs.get_best_value():.6g}"
        rows.append(row)
    fields = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, text.getvalue())  # atomic: a killed process never leaves half a file


class _OracleTuner(DriftScoredTuner, keras_tuner.Tuner):
    """A drift-scored tuner that makes its oracle, `_oracle_class`, from the search budget.

    `_oracle_options` are the oracle's own further arguments the tuner takes,
    with their defaults; every other keyword goes to `keras_tuner.Tuner`.
    """

    _oracle_class = None
    _oracle_options = {}
    # The oracle's arguments that every tuner takes, with Keras Tuner's defaults.
    _common_options = {"hyperparameters": None, "tune_new_entries": True, "allow_new_entries": True}

    def __init__(self, hypermodel, objective_spec=None, validation_data=None, max_trials=10, seed=0, **kwargs):
        defaults = {**self._common_options, **self._oracle_options}
        options = {name: kwargs.pop(name, default) for name, default in defaults.items()}
        oracle = self._oracle_class(objective=drift_objective(), max_trials=max_trials, seed=seed, **options)
        kwargs.setdefault("trial_seed", seed)
        super().__init__(
            oracle=oracle, hypermodel=hypermodel, objective_spec=objective_spec,
            validation_data=validation_data, **kwargs,
        )


class BayesFTTuner(_OracleTuner):
    """BayesFT: per-layer dropout rates found by Bayesian optimisation of drift accuracy.

    Args:
        hypermodel: a `BayesFTHyperModel` (or any HyperModel with `build`/`fit`).
        objective_spec: a `DriftObjective`.
        validation_data: `(x, y)` to score drift accuracy on.
        max_trials: the search budget.
        seed: seed of the oracle.
        hyperparameters, tune_new_entries, allow_new_entries: as Keras Tuner's oracles.
        num_initial_points: hand-picked + random trials before the GP takes over
            (default 4).
        initial_values: optional `{name: value}` of the first trial (default:
            the centre of every range), see `BayesFTOracle`.
        **kwargs: `keras_tuner.Tuner` arguments (`directory`, `project_name`,
            `overwrite`...) and `DriftScoredTuner`'s (`method`, `trials_csv`...).
    """

    _oracle_class = BayesFTOracle
    _oracle_options = {"num_initial_points": 4, "initial_values": None}


class DriftRandomSearch(_OracleTuner):
    """The random-search baseline: Keras Tuner's RandomSearch oracle, the same objective.

    Args: as `BayesFTTuner`, without `num_initial_points` and `initial_values`.
    """

    _oracle_class = DriftRandomSearchOracle
