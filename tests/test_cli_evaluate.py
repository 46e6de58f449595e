"""`bayesft-keras evaluate` and `bayesft-keras plot`: end to end, and one-line errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import bayesft_keras as bk  # noqa: E402
from bayesft_keras.cli import app  # noqa: E402
from bayesft_keras.data import load  # noqa: E402
from bayesft_keras.evaluation import DriftReport  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _cli_subprocess(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "bayesft_keras_cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_evaluate_end_to_end_writes_json_csv_png(files, digits, tmp_path):
    result = _cli_subprocess(
        "evaluate", files / "plain.keras", "--dataset", "digits", "--sigmas", "0:1:0.5",
        "--chips", "3", "--threshold", "0.5", "--out", "report", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    out = tmp_path / "report"
    report = DriftReport.from_json(out / "report.json")
    assert report.values.tolist() == [0.0, 0.5, 1.0] and report.chips == 3
    assert report.model_name == "plain" and report.dataset == "digits/test"
    # The clean metric is the saved model's own accuracy on the digits test split.
    model = keras.models.load_model(files / "plain.keras")
    accuracy = np.mean(np.argmax(model.predict(digits.x_test, verbose=0), -1) == digits.y_test)
    assert report.clean == accuracy and report.num_examples == len(digits.y_test)
    assert len((out / "report.csv").read_text().strip().splitlines()) == 1 + 3
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "yield≥0.5" in result.stdout and "Wrote" in result.stdout


def test_evaluate_keeps_a_device_models_settings_and_plot_compares(files, tmp_path):
    for name in ("plain", "device"):
        result = _invoke(
            "evaluate", files / f"{name}.keras", "--sigmas", "0,1.2", "--chips", "2", "--out", tmp_path / name
        )
        assert result.exit_code == 0, result.output
    device = json.loads((tmp_path / "device" / "report.json").read_text())
    assert device["bits"] == 4 and device["noise"]["config"]["sigma"] == 0.5
    result = _invoke(
        "plot", tmp_path / "plain" / "report.json", tmp_path / "device" / "report.json", "-o", tmp_path / "cmp.png"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.keras"], "Model file not found"),
        (["{dir}/text.keras"], "is not a Keras model file"),
        (["{dir}/notes.txt"], "is not a Keras model file"),
        (["{dir}/plain.keras", "--sigmas=-0.5,0.5"], "sigma"),
        (["{dir}/plain.keras", "--sigmas", "1:0:0.1"], "start <= stop"),
        (["{dir}/plain.keras", "--chips", "0"], "chips"),
        (["{dir}/flat.keras"], r"do not match the model's input shape \(10,\)"),
        (["{dir}/plain.keras", "--metric", "no_such_metric"], "no_such_metric"),
    ],
)
def test_evaluate_bad_input_is_one_line(files, tmp_path, args, message):
    args = [a.format(dir=files) for a in args]
    if "--chips" not in args:
        args += ["--chips", "1"]
    result = _invoke("evaluate", *args, "--out", tmp_path)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]


def test_plot_bad_input_is_one_line(files, tmp_path):
    (tmp_path / "bad.json").write_text("{}")
    for path, message in ((tmp_path / "bad.json", "Not a bayesft-keras drift report"),
                          (tmp_path / "none.json", "not found")):
        result = _invoke("plot", path, "-o", tmp_path / "x.png")
        assert result.exit_code == 2 and result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert message in result.stderr


@pytest.mark.slow
def test_error_of_the_installed_command_is_one_line(files, tmp_path):
    result = _cli_subprocess(
        "evaluate", files / "plain.keras", "--metric", "no_such_metric", "--chips", "1", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("Error: Unknown metric 'no_such_metric'")


def test_sigma_ranges_include_their_stop():
    from bayesft_keras.cli.evaluate import parse_values
    from bayesft_keras.evaluation import DEFAULT_SIGMAS

    assert parse_values("0:1.5:0.05") == list(DEFAULT_SIGMAS) and len(DEFAULT_SIGMAS) == 31
    assert parse_values("0:1.5:0.1")[-1] == 1.5 and len(parse_values("0:1.5:0.1")) == 16
    assert parse_values("0.2, 0.4,1") == [0.2, 0.4, 1.0]
