"""Run directories: one process at a time, atomic Keras Tuner files, torn files recovered on resume."""

import errno
import os
import subprocess
import sys
import textwrap

import keras
import keras_tuner as kt
import pytest

from bayesft_keras.tuning.durable import DurableOracleMixin
from bayesft_keras.tuning.durable import SaveFailed
from bayesft_keras.tuning.durable import TornFileWarning
from bayesft_keras.tuning.durable import save_model
from bayesft_keras.tuning.run_lock import RunDirectoryLocked
from bayesft_keras.tuning.run_lock import RunLock

HOLD = textwrap.dedent(
    """
    import sys, time
    from bayesft_keras.tuning.run_lock import RunLock
    with RunLock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def _holder(directory):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_with_the_holders_pid_and_a_dead_holders_lock_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunDirectoryLocked, match=f"PID {holder.pid}"):
            with RunLock(tmp_path):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the PID file stays behind
        holder.wait()
    with RunLock(tmp_path) as lock:
        assert lock.holder() == os.getpid()
    assert lock.holder() is None


class _Oracle(DurableOracleMixin, kt.oracles.RandomSearchOracle):
    pass


def _oracle(directory, max_trials=6):
    hp = kt.HyperParameters()
    hp.Float("rate", 0.0, 1.0)
    oracle = _Oracle(objective=kt.Objective("score", "max"), max_trials=max_trials, hyperparameters=hp, seed=3)
    oracle._set_project_dir(str(directory), "search")
    return oracle


def _run(oracle, trials, leave_running=False):
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"score": trial.hyperparameters.get("rate")})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    if leave_running:
        oracle.create_trial("tuner0")
    oracle.save()


def _resumed(directory):
    oracle = _oracle(directory)
    with pytest.warns(TornFileWarning) as caught:
        oracle.reload()
    return oracle, [str(w.message) for w in caught]


def test_files_are_written_whole_and_a_torn_trial_is_set_aside_and_run_again(tmp_path):
    oracle = _oracle(tmp_path)
    _run(oracle, 3, leave_running=True)
    project = tmp_path / "search"
    assert not [p for p in os.listdir(project) if p.endswith(".tmp")]
    (project / "trial_1" / "trial.json").write_text('{"trial_id": ')  # killed mid-write

    resumed, messages = _resumed(tmp_path)
    assert len(messages) == 1 and "trial_1/trial.json is torn" in messages[0] and "trial_1.torn" in messages[0]
    assert (project / "trial_1.torn").is_dir()
    # The torn trial keeps its id and runs again, after the one that was running when killed.
    assert sorted(resumed.trials) == ["0", "1", "2", "3"]
    assert sorted(resumed._retry_queue) == ["1", "3"]
    assert resumed.trials["1"].status == "RUNNING" and (project / "trial_1" / "trial.json").is_file()
    # 6 asked, 4 on disk (2 finished, 2 to run again): 2 new trials, numbered after them.
    assert resumed.remaining_trials() == 2
    rerun = {resumed.create_trial(f"tuner{i}").trial_id for i in range(2)}
    assert rerun == {"1", "3"}
    assert resumed.create_trial("tuner2").trial_id == "4"  # no id is given twice


@pytest.mark.parametrize("damage", ["", '{"ongoing_trials": {'])
def test_an_empty_or_torn_oracle_json_is_rebuilt_from_the_trials(tmp_path, damage):
    _run(_oracle(tmp_path), 3, leave_running=True)
    (tmp_path / "search" / "oracle.json").write_text(damage)

    resumed, messages = _resumed(tmp_path)
    assert "oracle.json is " + ("empty" if not damage else "torn") in messages[0]
    assert resumed.end_order == ["0", "1", "2"] and resumed._retry_queue == ["3"]
    assert len(resumed._tried_so_far) == 4  # finished values are not proposed again
    trial = resumed.create_trial("tuner0")
    assert trial.trial_id == "3"  # the interrupted trial first


def test_a_failed_model_save_is_one_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "model.keras"
    save_model(model, path)
    assert keras.models.load_model(path).count_params() == model.count_params()

    def full_disk(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03")  # a partial zip, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(SaveFailed, match="could not write .*other.keras: No space left on device"):
        save_model(model, tmp_path / "other.keras")
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]
    assert isinstance(SaveFailed("x"), kt.errors.FatalError)  # Keras Tuner does not mark the trial FAILED


def test_summary_says_what_each_file_is_and_lists_the_warm_start_only_when_there_is_one():
    from bayesft_keras.tuning import artifacts
    from bayesft_keras.tuning.config import TuneConfig

    cold = dict(artifacts.run_files(TuneConfig(warm_start_epochs=0)))
    warm = dict(artifacts.run_files(TuneConfig(warm_start_epochs=3)))
    assert artifacts.WARM_START_FILE not in cold and "resume needs it" in warm[artifacts.WARM_START_FILE]
    assert set(warm) - set(cold) == {artifacts.WARM_START_FILE}
    for name in ("summary.md", "config.json", "trials.csv", "best_model.keras", "reports/comparison.png", "tb/"):
        assert cold[name], name
    assert cold["kt/<method>/trial_<id>/model.keras"].startswith("the trained network of each search's best trial only")
