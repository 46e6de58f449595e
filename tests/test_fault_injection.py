"""Fault injection: a search killed at random moments, torn files, a full disk, two starts at once.

Every scenario ends by comparing the run directory's trials with those of an uninterrupted run of
the same command, value for value (trials.csv holds each trial's rates and scores to 6 digits; the
drift reports on disk hold them in full). Figures of the suite: 20 SIGKILLs at random moments of a
search, in two tests of 10; 0 trials lost; 0 directories left that could not be resumed.
"""

import csv
import errno
import json
import random
import signal
import subprocess
import sys
import time

import pytest

from bayesft_keras.tuning import durable
from bayesft_keras.tuning.config import load_preset
from bayesft_keras.tuning.search import run_search

TINY = """
[model]
arch = "mlp"
width = 0.25
[objective]
sigma = 0.8
chips = 4
[search]
trials = 4
initial_points = 2
baselines = ["no_dropout"]
[training]
epochs = 2
batch_size = 64
[report]
report_sigmas = [0.0, 1.5, 3]
report_chips = 4
"""
KILLS_PER_TEST = 10


def _preset(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _command(preset, run):
    return [sys.executable, "-m", "bayesft_keras_cli", "tune", "--preset", str(preset), "--dir", str(run), "--quiet"]


def _trials(run):
    with open(run / "trials.csv") as f:
        return list(csv.DictReader(f))


def _reports(run):
    """Every finished trial's drift report, by method and trial: the scores in full precision."""
    reports = {}
    for path in sorted((run / "kt").glob("*/trial_*/drift_report.json")):
        report = json.loads(path.read_text())
        reports[(path.parts[-3], path.parts[-2])] = (report["clean"], report["chip_metrics"])
    return reports


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run every interrupted one must end equal to; its start-up and whole durations."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    run = tmp_path / "run"
    start = time.monotonic()
    process = subprocess.Popen(_command(_preset(tmp_path), run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (run / "config.json").is_file() and process.poll() is None:
        time.sleep(0.05)
    started = time.monotonic() - start  # imports, data and hypermodels: before any trial
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-2000:]
    return run, started, time.monotonic() - start


def _assert_same_search(run, reference):
    assert _trials(run) == _trials(reference)
    assert _reports(run) == _reports(reference)
    assert json.loads((run / "reports" / "bayesft.json").read_text()) == json.loads(
        (reference / "reports" / "bayesft.json").read_text()
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_killed_at_random_moments_the_search_resumes_to_the_uninterrupted_trials(tmp_path, uninterrupted, seed):
    reference, started, duration = uninterrupted
    run = tmp_path / "run"
    command = _command(_preset(tmp_path), run)
    rng = random.Random(seed)
    kills = 0
    while kills < KILLS_PER_TEST:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # From late start-up to a quarter of the search in: each kill lets the search move on
        # a little, so the kills fall in every phase (training, scoring, saving, the oracle's
        # files, the final report), and in the resume of a search already finished.
        time.sleep(rng.uniform(0.8 * started, started + (duration - started) / 4))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]  # the directory resumed
    _assert_same_search(run, reference)


@pytest.mark.slow
def test_a_killed_search_in_groups_keeps_every_finished_trial(tmp_path):
    # Trials trained two at a time (`trials_at_once`): a kill during the group's training loses
    # only the group's unfinished trials, which run again with their values; a kill between two
    # trials of a group keeps the first.
    preset = tmp_path / "grouped.toml"
    preset.write_text(TINY.replace("trials = 4", "trials = 6\ntrials_at_once = 2"))
    run = tmp_path / "run"
    command = _command(preset, run)
    rng = random.Random(2)
    finished = {}
    for _ in range(5):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(6.0, 14.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        rows = {r["trial"]: r for r in _trials(run) if r["method"] == "bayesft"} if (run / "trials.csv").exists() else {}
        assert all(rows.get(t) == row for t, row in finished.items())  # nothing finished is lost or redone
        finished.update(rows)
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {r["trial"]: r for r in _trials(run) if r["method"] == "bayesft"}
    assert sorted(rows, key=int) == [str(i) for i in range(6)]
    assert all(rows[t] == row for t, row in finished.items())
    assert json.loads((run / "config.json").read_text())["trials_at_once"] == 2


def _search(tmp_path, run):
    return run_search(load_preset(str(_preset(tmp_path))), run, verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["oracle.json", "trial_1/trial.json", "tuner0.json", "trial_2/trial.json", "trial_1/model.keras"]
)
def test_a_torn_keras_tuner_file_is_named_and_its_trial_runs_again(tmp_path, uninterrupted, name):
    reference = uninterrupted[0]
    run = tmp_path / "run"
    _search(tmp_path, run)
    torn = run / "kt" / "bayesft" / name
    data = torn.read_bytes()
    # Killed mid-write, as files were before atomic writes; a model of 0 bytes, as on a full disk.
    torn.write_bytes(b"" if name.endswith(".keras") else data[: len(data) // 2])
    with pytest.warns(durable.TornFileWarning, match=name.replace("/", ".")):
        _search(tmp_path, run)
    if name.startswith("trial_"):
        # The trial ran again under its id; its rates are proposed anew, so only the others must match.
        assert [r["trial"] for r in _trials(run) if r["method"] == "bayesft"] == ["0", "1", "2", "3"]
    else:
        _assert_same_search(run, reference)


@pytest.mark.slow
def test_a_full_disk_stops_the_search_with_one_error_and_loses_no_trial(tmp_path, uninterrupted, monkeypatch):
    reference = uninterrupted[0]
    run = tmp_path / "run"
    real_save = durable.save_model
    calls = []

    def full_disk_at_the_third_model(model, path, weights_only=False):
        calls.append(path)
        if len(calls) == 3:
            with durable.saving(path):
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(model, path, weights_only)

    monkeypatch.setattr(durable, "save_model", full_disk_at_the_third_model)
    with pytest.raises(durable.SaveFailed, match="could not write .*model.keras: No space left on device"):
        _search(tmp_path, run)
    before = _trials(run)
    assert [r["trial"] for r in before] == ["0", "1"]  # the failed trial is not marked FAILED ...
    monkeypatch.setattr(durable, "save_model", real_save)
    _search(tmp_path, run)  # ... and runs again on resume
    _assert_same_search(run, reference)


@pytest.mark.slow
def test_a_second_start_on_the_same_directory_exits_at_once_naming_the_first(tmp_path):
    run = tmp_path / "run"
    command = _command(_preset(tmp_path), run)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / ".lock.pid").is_file():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and f"PID {first.pid}" in lines[0], second.stderr[-2000:]
    assert "Traceback" not in second.stderr
