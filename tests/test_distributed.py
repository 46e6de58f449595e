"""Distributed tuning: Keras Tuner's chief/worker mode on loopback, `launch`, MirroredStrategy trials."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras_tuner
import pytest
from typer.testing import CliRunner

from bayesft_keras.cli import app
from bayesft_keras.tuning import distributed
from bayesft_keras.tuning import launcher as launcher_lib

TRIALS = 4
# Small enough for 2 shared cores: each trial trains a narrow MLP on the digits.
PRESET = f"""
[model]
arch = "mlp"
width = 0.25
[objective]
sigma = 0.8
chips = 4
[search]
trials = {TRIALS}
initial_points = 2
baselines = {{baselines}}
[training]
epochs = {{epochs}}
batch_size = 64
[report]
report_sigmas = [0.0, 1.5, 3]
report_chips = 4
"""


def _preset(tmp_path, baselines="[]", epochs=1):
    path = tmp_path / "tiny.toml"
    path.write_text(PRESET.format(baselines=baselines, epochs=epochs))
    return path


# -- flags and environment ---------------------------------------------------------


@pytest.mark.parametrize(
    "address, expected",
    [("127.0.0.1:8000", ("127.0.0.1", 8000)), ("chief.example:1", ("chief.example", 1)), ("[::1]:9000", ("::1", 9000))],
)
def test_chief_addresses_parse(address, expected):
    assert distributed.parse_address(address) == expected


@pytest.mark.parametrize("address", ["localhost", "host:0", "host:70000", ":8000", "a:b", "1.2.3.4:80:90"])
def test_bad_chief_addresses_name_the_value(address):
    with pytest.raises(ValueError, match=re.escape(repr(address))):
        distributed.parse_address(address)


def test_flags_map_onto_keras_tuner_environment(monkeypatch):
    for key in (distributed.ENV_TUNER_ID, distributed.ENV_ORACLE_IP, distributed.ENV_ORACLE_PORT):
        monkeypatch.delenv(key, raising=False)
    assert distributed.Cluster.from_flags(None, None) is None
    worker = distributed.Cluster.from_flags("10.0.0.5:7000", "tuner3")
    assert not worker.is_chief
    assert worker.environment(2) == {
        "KERASTUNER_TUNER_ID": "tuner3", "KERASTUNER_ORACLE_IP": "10.0.0.5", "KERASTUNER_ORACLE_PORT": "7002"
    }
    chief = distributed.Cluster.from_flags("127.0.0.1:7000", "chief")
    with chief.activate(1):
        from keras_tuner.src.distribute import utils as kt_utils

        assert kt_utils.has_chief_oracle() and kt_utils.is_chief_oracle()
        assert os.environ["KERASTUNER_ORACLE_PORT"] == "7001"
    assert "KERASTUNER_TUNER_ID" not in os.environ and "KERASTUNER_ORACLE_PORT" not in os.environ


@pytest.mark.parametrize(
    "chief, worker_id, message",
    [
        (None, "tuner0", "needs `--chief"),
        ("127.0.0.1:8000", None, "needs `--worker-id"),
        ("127.0.0.1:8000", "vice-chief", "'vice-chief'"),  # Keras Tuner would take it for the chief
        ("127.0.0.1:8000", "tuner 0", "'tuner 0'"),
    ],
)
def test_bad_role_flags(chief, worker_id, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        distributed.Cluster.from_flags(chief, worker_id)


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune", "--chief", "nowhere"], "chief.*'nowhere'"),
        (["tune", "--worker-id", "tuner0"], "needs `--chief"),
        (["tune", "--distribute", "magic"], "distribute.*'magic'"),
        (["launch", "--workers", "0"], "workers.*0"),
        (["launch", "--workers", "2", "--chief", "1.2.3.4:5"], "sets --chief"),
        (["launch", "--workers", "2", "--restarts", "-1"], "restarts.*-1"),
    ],
)
def test_bad_distributed_flags_exit_with_one_line(args, message, tmp_path):
    result = CliRunner().invoke(app, args + ["--dir", str(tmp_path / "run")] if args[0] == "tune" else args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.output


def test_distribute_flag_gives_the_strategy():
    import keras

    assert distributed.mirrored_strategy("none") is None
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        assert isinstance(distributed.mirrored_strategy("mirrored"), tf.distribute.MirroredStrategy)
    with pytest.raises(ValueError, match="'ring'"):
        distributed.mirrored_strategy("ring")


def test_worker_log_lines_read_back():
    hp = keras_tuner.HyperParameters()
    hp.Float("dropout_fc1", 0.2, 0.8)
    hp.values["dropout_fc1"] = 0.4375
    trial = keras_tuner.engine.trial.Trial(hp, trial_id="07", status="COMPLETED")
    text = "\n".join([
        "Epoch 1/1",
        distributed.trial_started_line("tuner1", "bayesft", trial),
        distributed.trial_ended_line("tuner1", "bayesft", trial, {"drift_accuracy": 0.123456789, "clean_accuracy": 1}),
    ])
    started, ended = distributed.read_worker_log(text)
    assert started == [{"worker": "tuner1", "method": "bayesft", "trial": "07", "pid": os.getpid()}]
    assert ended == [{"worker": "tuner1", "method": "bayesft", "trial": "07", "status": "completed",
                      "metrics": {"drift_accuracy": 0.123456789, "clean_accuracy": 1.0}}]


def test_lost_trials_are_the_running_ones_on_disk(tmp_path):
    hp = keras_tuner.HyperParameters()
    for trial_id, status in (("0", "COMPLETED"), ("1", "RUNNING"), ("2", "FAILED")):
        trial = keras_tuner.engine.trial.Trial(hp, trial_id=trial_id, status=status)
        (tmp_path / "bayesft" / f"trial_{trial_id}").mkdir(parents=True)
        trial.save(str(tmp_path / "bayesft" / f"trial_{trial_id}" / "trial.json"))
    assert distributed.lost_trials(tmp_path) == {"bayesft": ["1"]}


# -- the launch supervisor, with stand-in processes -------------------------------------

STAND_IN = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    run, worker_id = Path(sys.argv[1]), sys.argv[2]
    print("GPU", os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"), flush=True)
    if worker_id == "chief":  # serves until every worker has finished
        while len(list(run.glob("done-*"))) < int(os.environ["STAND_IN_WORKERS"]):
            time.sleep(0.05)
        sys.exit(0)
    starts = run / f"starts-{worker_id}"
    count = int(starts.read_text()) + 1 if starts.exists() else 1
    starts.write_text(str(count))
    if count <= int(os.environ.get(f"STAND_IN_FAILS_{worker_id}", "0")):
        sys.exit(int(os.environ.get("STAND_IN_CODE", "3")))
    (run / f"done-{worker_id}").write_text("")
    """
)


def _stand_in(monkeypatch, workers, **env):
    def command(tune_args, directory, chief, worker_id):
        return [sys.executable, "-c", STAND_IN, str(directory), worker_id]

    monkeypatch.setattr(launcher_lib, "tune_command", command)
    monkeypatch.setenv("STAND_IN_WORKERS", str(workers))
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_launch_gives_each_worker_one_gpu_in_turn(tmp_path, monkeypatch):
    _stand_in(monkeypatch, 3)
    result = distributed.launch([], tmp_path, 3, gpus=["0", "1"], echo=lambda line: None)
    assert result.exit_code == 0 and result.exit_codes == {w: [0] for w in ("chief", "tuner0", "tuner1", "tuner2")}
    seen = {
        w: next(line for line in (tmp_path / "logs" / f"{w}.log").read_text().splitlines() if line.startswith("GPU "))
        for w in result.exit_codes
    }
    assert seen == {"chief": "GPU 0 false", "tuner0": "GPU 0 false", "tuner1": "GPU 1 false", "tuner2": "GPU 0 false"}


def test_launch_starts_a_failed_worker_again_up_to_restarts(tmp_path, monkeypatch):
    _stand_in(monkeypatch, 2, STAND_IN_FAILS_tuner1="2")
    lines = []
    result = distributed.launch([], tmp_path, 2, restarts=2, echo=lines.append)
    assert result.exit_code == 0, lines
    assert result.exit_codes == {"chief": [0], "tuner0": [0], "tuner1": [3, 3, 0]}
    assert lines.count("tuner1 ended with exit code 3: starting it again (it runs its trial again)") == 2
    assert (tmp_path / "logs" / "tuner1.log").read_text().count("restarted") == 2


def test_launch_gives_up_and_stops_the_waiting_chief(tmp_path, monkeypatch):
    _stand_in(monkeypatch, 2, STAND_IN_FAILS_tuner1="5")
    lines = []
    result = distributed.launch([], tmp_path, 2, restarts=1, echo=lines.append)
    assert result.exit_code == 1
    assert result.exit_codes["tuner1"] == [3, 3] and result.exit_codes["tuner0"] == [0]
    assert result.exit_codes["chief"] == [-signal.SIGTERM]  # it was left waiting, then stopped
    assert "no worker left and the chief waits for the trial(s) of tuner1: stopping it" in lines


def test_launch_does_not_restart_a_worker_that_rejects_its_flags(tmp_path, monkeypatch):
    _stand_in(monkeypatch, 1, STAND_IN_FAILS_tuner0="5", STAND_IN_CODE="2")
    result = distributed.launch([], tmp_path, 1, restarts=3, echo=lambda line: None)
    assert result.exit_code == 1 and result.exit_codes["tuner0"] == [2]


# -- a chief and two workers on loopback ------------------------------------------------


def _launch(tmp_path, *extra, baselines="[]"):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "bayesft_keras_cli", "launch", "--workers", "2",
               "--preset", str(_preset(tmp_path, baselines)), "--dir", str(run), *extra]
    return run, command


def _oracle_trials(run, project="bayesft"):
    """The oracle's record of every trial, read back from its saved state."""
    trials = {}
    for path in sorted((run / "kt" / project).glob("trial_*/trial.json")):
        trial = keras_tuner.engine.trial.Trial.load(str(path))
        trials[trial.trial_id] = trial
    return trials


def _worker_logs(run):
    started, ended = [], []
    for worker in ("tuner0", "tuner1"):
        s, e = distributed.read_worker_log((run / "logs" / f"{worker}.log").read_text())
        started += s
        ended += e
    return started, ended


def _check_logs_match_oracle(trials, ended, project_trial_ids, method="bayesft"):
    by_trial = {}
    for record in ended:
        if record["method"] == method:
            by_trial.setdefault(record["trial"], []).append(record)
    for trial_id in project_trial_ids:
        records = by_trial[trial_id]
        assert len(records) == 1, (trial_id, records)  # every trial finished exactly once
        trial = trials[trial_id]
        assert trial.status == "COMPLETED" and records[0]["status"] == "completed"
        for name in ("drift_accuracy", "clean_accuracy"):
            assert trial.metrics.get_best_value(name) == pytest.approx(records[0]["metrics"][name], abs=1e-12)


@pytest.mark.slow
def test_a_chief_and_two_workers_finish_a_search_with_its_baseline(tmp_path):
    run, command = _launch(tmp_path, baselines='["no_dropout"]')
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "chief ended with exit code 0" in result.stdout

    trials = _oracle_trials(run)
    bayesft_ids = [str(i) for i in range(TRIALS)]
    assert sorted(trials) == bayesft_ids
    baseline = _oracle_trials(run, "no_dropout")
    assert list(baseline) == ["0"]
    # The worker logs hold the TRIALS BayesFT trials and the baseline's one, each started and ended once.
    started, ended = _worker_logs(run)
    assert len(started) == len(ended) == TRIALS + 1
    _check_logs_match_oracle(trials, ended, bayesft_ids)
    _check_logs_match_oracle(baseline, ended, ["0"], method="no_dropout")
    assert {r["worker"] for r in started} == {"tuner0", "tuner1"}  # both workers ran trials

    # The chief wrote trials.csv from the oracle, and the reports of the best trial.
    import csv

    with open(run / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["trial"] for r in rows if r["method"] == "bayesft") == bayesft_ids
    for row in rows:
        if row["method"] == "bayesft":
            assert float(row["drift_accuracy"]) == pytest.approx(
                trials[row["trial"]].metrics.get_best_value("drift_accuracy"), rel=1e-5)
    best = max(trials.values(), key=lambda t: t.score)
    summary = (run / "summary.md").read_text()
    assert f"{best.score:.4f}" in summary and (run / "best_model.keras").is_file()
    assert (run / "reports" / "no_dropout.json").is_file()
    chief_log = (run / "logs" / "chief.log").read_text()
    assert chief_log.count("[chief] serving the oracle") == 2  # one oracle per search, each on its own port


def _wait_for_trial_start(path, deadline):
    while time.time() < deadline:
        if path.exists():
            started, _ = distributed.read_worker_log(path.read_text())
            if started:
                return started[0]
        time.sleep(0.2)
    raise AssertionError(f"no trial started in {path}")


@pytest.mark.slow
def test_a_worker_killed_during_a_trial_is_started_again_and_reruns_that_trial(tmp_path):
    run, command = _launch(tmp_path)
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _wait_for_trial_start(run / "logs" / "tuner1.log", time.time() + 300)
        time.sleep(1.0)  # into the trial (building and training)
        os.kill(victim["pid"], signal.SIGKILL)
        out, err = launcher.communicate(timeout=600)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, out[-3000:] + err[-2000:]
    assert "tuner1 ended with exit code -9: starting it again" in out
    assert "chief ended with exit code 0" in out

    trials = _oracle_trials(run)
    assert sorted(trials) == [str(i) for i in range(TRIALS)]  # no trial lost, none added
    started, ended = _worker_logs(run)
    again = [r for r in started if r["trial"] == victim["trial"]]
    assert len(again) == 2 and again[1]["worker"] == "tuner1" and again[1]["pid"] != victim["pid"]
    _check_logs_match_oracle(trials, ended, sorted(trials))
    assert distributed.lost_trials(run / "kt") == {}
    assert (run / "best_model.keras").is_file()


@pytest.mark.slow
def test_a_lost_trial_is_reported_and_a_local_resume_runs_it(tmp_path):
    run, command = _launch(tmp_path, "--restarts", "0")
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _wait_for_trial_start(run / "logs" / "tuner1.log", time.time() + 300)
        time.sleep(1.0)
        os.kill(victim["pid"], signal.SIGKILL)
        out, err = launcher.communicate(timeout=600)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    # The other worker finished the search; the chief, left waiting for the lost trial, was stopped.
    assert launcher.returncode == 1, out[-3000:] + err[-2000:]
    assert f"trial(s) {victim['trial']} of 'bayesft' did not finish" in out
    assert "tuner0 finished" in out
    assert distributed.lost_trials(run / "kt") == {"bayesft": [victim["trial"]]}
    trials = _oracle_trials(run)
    done = sorted(t for t in trials if t != victim["trial"])
    _, ended = _worker_logs(run)
    _check_logs_match_oracle(trials, ended, done)

    # One process resumes from the oracle's saved state: it runs the lost trial only, then the reports.
    resume = subprocess.run(
        [sys.executable, "-m", "bayesft_keras_cli", "tune", "--preset", str(tmp_path / "tiny.toml"),
         "--dir", str(run), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert resume.returncode == 0, resume.stderr[-2000:]
    after = _oracle_trials(run)
    assert sorted(after) == sorted(trials) and all(t.status == "COMPLETED" for t in after.values())
    for trial_id in done:  # finished trials were kept as they were
        assert after[trial_id].score == trials[trial_id].score
    assert (run / "best_model.keras").is_file() and (run / "summary.md").is_file()


# -- data-parallel trials ---------------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import bayesft_keras as bk
    from bayesft_keras import data
    from bayesft_keras.tuning import distributed
    from bayesft_keras.tuning.config import TuneConfig
    from bayesft_keras.tasks.classification import zoo_hypermodel
    from bayesft_keras.tuning.search import run_search

    seen = []

    def build(config, ds, noise_injection=False):
        hypermodel = zoo_hypermodel(config, ds)
        fit = hypermodel.fit

        def recording_fit(hp, model, *args, **kwargs):
            seen.append({
                "replicas": model.distribute_strategy.num_replicas_in_sync,
                "variable": type(model.trainable_variables[0].value).__name__,
            })
            return fit(hp, model, *args, **kwargs)

        hypermodel.fit = recording_fit
        return hypermodel

    strategy = distributed.mirrored_strategy("mirrored")
    config = TuneConfig(name="mirrored", arch="mlp", width=0.5, dataset="digits", sigma=0.8, chips=6, trials=1,
                        initial_points=1, epochs=6, batch_size=64, baselines=(), report_sigmas=(0.0, 1.5, 2),
                        report_chips=2)
    result = run_search(config, sys.argv[1], verbose=0, build_hypermodel=build, distribution_strategy=strategy)
    best = keras.models.load_model(f"{sys.argv[1]}/best_model.keras")
    ds = data.load("digits", seed=0)
    again = bk.evaluate_drift(best, (ds.x_val, ds.y_val), sigmas=[0.8], chips=6, seed=0, progress=False)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync, "seen": seen,
        "score": result.best.validation_score, "again": float(again.mean()[0]), "clean": float(again.clean),
    }))
    """
)


@pytest.mark.slow
def test_a_trial_trains_data_parallel_under_mirrored_strategy(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == 2
    assert figures["seen"] == [{"replicas": 2, "variable": "MirroredVariable"}]
    # It learned (10 classes: chance is 0.1) and its score is reproduced by the saved model.
    assert figures["clean"] > 0.6
    assert figures["again"] == pytest.approx(figures["score"], abs=1e-12)
