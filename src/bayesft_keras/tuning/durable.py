"""Run directories that survive a kill or a full disk at any moment.

Keras Tuner writes `oracle.json`, `trial_*/trial.json` and `tuner0.json` in place, so a kill
during a write leaves a torn file that fails every later resume. The mixins here write every
file of a run directory atomically (`bayesft_keras.utils.files`: temporary file, fsync,
rename) and, on resume, name a torn or empty file and recover instead of failing:

- a torn `trial.json`: its folder is set aside as `trial_<id>.torn` and the trial runs again
  under its id, with values proposed anew;
- a torn `oracle.json`: the oracle's state is rebuilt from the trials on disk;
- a torn `tuner0.json`: it holds no state of its own, so it is rewritten.

A failed save (`OSError`, e.g. ENOSPC) is not a failed trial: `SaveFailed` is a Keras Tuner
`FatalError`, so it ends the search instead of marking the trial FAILED; the trial stays
unfinished on disk, and the next resume runs it again.
"""

import contextlib
import json
import os
import warnings

import keras_tuner

from bayesft_keras.utils import files

TRIAL_FILE = "trial.json"
_FINISHED = (keras_tuner.engine.trial.TrialStatus.COMPLETED, keras_tuner.engine.trial.TrialStatus.FAILED,
             keras_tuner.engine.trial.TrialStatus.INVALID)


class SaveFailed(keras_tuner.errors.FatalError):
    """Writing a file of the run directory failed; the search stops and can be resumed."""


class TornFileWarning(UserWarning):
    """A file of the run directory was unreadable on resume and was recovered."""


@contextlib.contextmanager
def saving(path):
    """Turns an `OSError` while writing `path` into one clear `SaveFailed`."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e)
        raise SaveFailed(f"could not write {path}: {reason}. The run directory is intact; free space and resume.") from e


def read_json(path):
    """The JSON in `path`, or raises `ValueError` naming the file when it is empty or torn."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        raise ValueError(f"{path} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is torn ({e})") from None


class DurableOracleMixin:
    """For a `keras_tuner.Oracle`: atomic saves, and a resume that survives torn files."""

    def save(self):
        path = self._get_oracle_fname()
        with saving(path):
            files.write_json(path, self.get_state())

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), TRIAL_FILE)
        with saving(path):
            files.write_json(path, trial.get_state())

    def reload(self):
        torn = self._load_trials()
        path = self._get_oracle_fname()
        try:
            state = read_json(path)
        except (OSError, ValueError) as e:
            warnings.warn(f"{e}: the oracle's state is rebuilt from the trials on disk.", TornFileWarning, stacklevel=2)
            state = self._rebuilt_state()
        state = self._without_missing_trials(state)
        self.set_state(state)
        # As Keras Tuner does: trials that were running when the process stopped run again.
        for trial in self.ongoing_trials.values():
            self._retry_queue.append(trial.trial_id)
        self.ongoing_trials = {}
        for trial_id in torn:
            self._run_again(trial_id)

    def _load_trials(self):
        """Loads every readable `trial.json`; returns the ids of the torn ones, set aside."""
        project = self._project_dir
        torn = []
        for name in sorted(os.listdir(project)):
            path = os.path.join(project, name, TRIAL_FILE)
            if not (name.startswith("trial_") and not name.endswith(".torn") and os.path.isfile(path)):
                continue
            try:
                trial = keras_tuner.engine.trial.Trial.from_state(read_json(path))
            except (ValueError, KeyError, TypeError) as e:
                self._set_aside(os.path.join(project, name), e)
                torn.append(name[len("trial_"):])
                continue
            self.trials[trial.trial_id] = trial
        return torn

    def run_again(self, trial_id, reason):
        """Sets a finished trial's folder aside (`reason` says why) and runs the trial again.

        With its own values: a trial's randomness derives from (seed, method, trial id), so
        the trial trains to the model it had, and the search goes on as if nothing was lost.
        """
        trial = self.trials.pop(trial_id)
        self._set_aside(self._get_trial_dir(trial.trial_id), reason)
        self.set_state(self._without_missing_trials(self.get_state()))
        self._run_again(trial_id, values=dict(trial.hyperparameters.values))

    def _run_again(self, trial_id, values=None):
        # Keras Tuner numbers new trials by how many it holds: the trial keeps its place (and
        # its id) and runs next; a torn trial.json lost its values, which are proposed anew.
        if values is None:
            response = self.populate_space(trial_id)
            if response["status"] != keras_tuner.engine.trial.TrialStatus.RUNNING:
                return
            values = response["values"]
        hyperparameters = self.hyperparameters.copy()
        hyperparameters.values = values
        trial = keras_tuner.engine.trial.Trial(hyperparameters=hyperparameters, trial_id=trial_id, status="RUNNING")
        self.trials[trial_id] = trial
        self.start_order.append(trial_id)
        self._record_values(trial)
        self._retry_queue.append(trial_id)
        self._save_trial(trial)
        self.save()

    @staticmethod
    def _set_aside(folder, reason):
        target = folder + ".torn"
        suffix = 1
        while os.path.exists(target):
            suffix += 1
            target = f"{folder}.torn{suffix}"
        os.replace(folder, target)
        warnings.warn(f"{reason}: set aside as {os.path.basename(target)}; that trial runs again.",
                      TornFileWarning, stacklevel=3)

    def _without_missing_trials(self, state):
        """`state` less every trial whose file was set aside, so that its values can be tried again."""
        known = set(self.trials)
        missing = set(state.get("start_order", [])) - known
        missing |= {t for t in state.get("ongoing_trials", {}).values() if t not in known}
        if not missing:
            return state
        state = dict(state)
        hashes = {state.get("id_to_hash", {}).get(t) for t in missing}
        state["ongoing_trials"] = {k: t for k, t in state["ongoing_trials"].items() if t in known}
        state["start_order"] = [t for t in state["start_order"] if t in known]
        state["end_order"] = [t for t in state["end_order"] if t in known]
        state["retry_queue"] = [t for t in state["retry_queue"] if t in known]
        state["run_times"] = {t: n for t, n in state["run_times"].items() if t in known}
        state["id_to_hash"] = {t: h for t, h in state["id_to_hash"].items() if t in known}
        state["tried_so_far"] = [h for h in state["tried_so_far"] if h not in hashes]
        return state

    def _rebuilt_state(self):
        """An oracle state made from the trials on disk (when `oracle.json` is unreadable)."""
        state = self.get_state()  # this oracle's own settings, as constructed
        ids = sorted(self.trials)
        finished = [t for t in ids if self.trials[t].status in _FINISHED]
        hashes = {t: self._compute_values_hash(self.trials[t].hyperparameters.values) for t in ids}
        state.update(
            ongoing_trials={},
            start_order=ids,
            end_order=finished,
            run_times={t: 1 for t in ids},
            retry_queue=[t for t in ids if t not in finished],
            tried_so_far=sorted(set(hashes.values())),
            id_to_hash=hashes,
        )
        return state


class DurableTunerMixin:
    """For a `keras_tuner.Tuner`: an atomic `tuner0.json` that a resume never fails on, and
    finished trials whose files are damaged run again.

    A tuner lists the files a finished trial must have in `trial_files(trial)`.
    """

    def trial_files(self, trial):
        """Paths that a finished `trial` must hold, whole (none by default)."""
        return []

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        path = self._get_tuner_fname()
        with saving(path):
            files.write_json(path, self.get_state())

    def reload(self):
        if not self._is_worker():
            self.oracle.reload()
            # Which files a trial must hold may depend on the others (only the best trial keeps
            # its model): all are listed before any trial runs again. A trial that runs again
            # with its own values scores as before, so the best stays the best.
            for trial_id, path in self._damaged_trials():
                self.oracle.run_again(trial_id, f"{path} is missing or empty")
        path = self._get_tuner_fname()
        try:
            self.set_state(read_json(path))
        except (OSError, ValueError) as e:
            # Keras Tuner's tuners keep no state in it: rewriting it loses nothing.
            warnings.warn(f"{e}: rewritten.", TornFileWarning, stacklevel=2)


    def _damaged_trials(self):
        """(trial id, path) of each finished trial whose `trial_files` are not all whole."""
        damaged = []
        for trial in list(self.oracle.trials.values()):
            if trial.status != keras_tuner.engine.trial.TrialStatus.COMPLETED:
                continue
            missing = [p for p in self.trial_files(trial) if not _whole(p)]
            if missing:
                damaged.append((trial.trial_id, missing[0]))
        return damaged


def _whole(path):
    return os.path.isfile(path) and os.path.getsize(path) > 0


def save_model(model, path, weights_only=False):
    """`model.save(path)` (`save_weights` when `weights_only`) through a temporary sibling,
    so that `path` is whole or absent, and a failure is one `SaveFailed`."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".partial.{name}")  # keeps the suffix Keras checks
    with saving(path):
        try:
            (model.save_weights if weights_only else model.save)(temporary)
            with open(temporary, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
