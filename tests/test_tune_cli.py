"""`bayesft-keras tune`: bad flags, resume after a killed process, TensorBoard's HParams view."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from bayesft_keras.cli import app

TINY_PRESET = """
[model]
arch = "mlp"
width = 0.25
[objective]
sigma = 0.8
chips = 4
[search]
trials = 3
initial_points = 2
baselines = []
[training]
epochs = {epochs}
batch_size = 64
[report]
report_sigmas = [0.0, 1.5, 3]
report_chips = 4
"""


def _preset(tmp_path, epochs=2):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PRESET.format(epochs=epochs))
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "transformer"], "Unknown architecture 'transformer'"),
        (["--sigma", "-0.5"], "sigma.*-0.5"),
        (["--trials", "0"], "trials.*0"),
        (["--bits", "1"], "bits.*1"),
        (["--bits", "many"], "bits.*'many'"),
        (["--preset", "/nonexistent/preset.toml"], "not found"),
        (["--preset", "no-such-preset"], "Unknown preset 'no-such-preset'"),
        (["--baselines", "magic"], "baselines"),
    ],
)
def test_bad_flags_exit_non_zero_with_one_line(args, message, tmp_path):
    result = CliRunner().invoke(app, ["tune", "--dir", str(tmp_path / "run")] + args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert __import__("re").search(message, lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "kt").exists()


def test_unreadable_preset_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("sigma = [unclosed\n")
    result = CliRunner().invoke(app, ["tune", "--preset", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Cannot read preset" in result.stderr


def _read_trials(path):
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_killed_search_resumes_and_keeps_every_finished_trial(tmp_path):
    run = tmp_path / "run"
    command = ["bayesft-keras", "tune", "--preset", str(_preset(tmp_path, epochs=12)), "--dir", str(run), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(_read_trials(run / "trials.csv")) < 1:
        assert process.poll() is None, "the search ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # in the middle of trial 1
    process.wait()
    before = _read_trials(run / "trials.csv")
    assert len(before) == 1
    # Written once, when the trial ends (its model is deleted at the end unless it is the best).
    first_report = run / "kt" / "bayesft" / "trial_0" / "drift_report.json"
    first_mtime = first_report.stat().st_mtime_ns

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    after = _read_trials(run / "trials.csv")
    assert [r["trial"] for r in after] == ["0", "1", "2"]  # every trial exactly once
    assert after[0] == before[0]  # the finished trial was kept as it was ...
    assert first_report.stat().st_mtime_ns == first_mtime  # ... and not trained again
    assert (run / "best_model.keras").is_file()


def test_resuming_with_other_settings_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"sigma": 0.1}))
    result = CliRunner().invoke(app, ["tune", "--preset", str(_preset(tmp_path)), "--dir", str(run)])
    assert result.exit_code == 2 and "other settings" in result.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_the_hparams_of_every_trial(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["tune", "--preset", str(_preset(tmp_path)), "--dir", str(run), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    trials = {r["trial"]: r for r in _read_trials(run / "trials.csv")}

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(run / "tb"),
         "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/data/plugins_listing", timeout=5)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "tensorboard did not start"
                time.sleep(0.5)
        experiment = {}
        while not experiment.get("hparamInfos") and time.time() < deadline:
            experiment = _post(base + "/data/plugin/hparams/experiment", {"experimentName": ""})
            time.sleep(0.5)
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"dropout_fc1", "dropout_fc2", "dropout_output"} <= hparams
        assert {"drift_accuracy", "clean_accuracy", "accuracy_sigma_1.50"} <= metrics
        groups = _post(
            base + "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                "colParams": [{"metric": {"tag": "drift_accuracy"}}],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )["sessionGroups"]
        served = {}
        for group in groups:
            name = group["name"]
            assert name.startswith("bayesft_")
            values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
            served[name.split("_")[-1]] = (group["hparams"]["dropout_fc1"], values["drift_accuracy"])
        assert set(served) == set(trials)
        for trial, (rate, score) in served.items():
            assert rate == pytest.approx(float(trials[trial]["dropout_fc1"]), rel=1e-5)
            assert score == pytest.approx(float(trials[trial]["drift_accuracy"]), rel=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=30)
