"""Every snippet of README.md runs: its ```python blocks, and its `bayesft-keras` command lines.

A python block runs as the README shows it, in a fresh namespace in a temporary working folder,
after the block it continues (`after`). Where the README shows a full-size run (30 trials, 20
epochs), the test shrinks it by exact text replacements (`shrink`), each of which must match the
block: the README text stays what users run, and a changed block fails here until this table is
updated. A new python block must be added to `SNIPPETS`.

Every `bayesft-keras ...` line of a ```bash block is parsed by the CLI itself (its options and
their types, without running the command); the cheap ones (`--version`, `info`, `--help`) run.
"""

import re
import shlex
from pathlib import Path

import keras
import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from bayesft_keras.cli import app
from bayesft_keras.device.chip import device_layers
from bayesft_keras.device.chip import noise_off

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)

# name -> a line that identifies the block; the block it continues; test-only replacements.
SNIPPETS = {
    "device": dict(marker='bk.ReRAMDense(32, activation="relu"'),
    "physics": dict(marker='report = bk.evaluate_drift(model, (x_test, y_test), noise=bk.PCMLikeNoise()', after="device"),
    "tuner": dict(
        marker='hypermodel = BayesFTHyperModel("lenet5"',
        shrink=[("max_trials=30", "max_trials=2"), ("chips=30", "chips=4")],
    ),
    "from_model": dict(marker="bk.BayesFTHyperModel.from_model(model"),
    "detection": dict(
        marker="detection.DetectionHyperModel(",
        shrink=[("epochs=20", "epochs=1"), ("sigmas=[0, 0.1, 0.2, 0.3, 0.4]", "sigmas=[0, 0.3], chips=2")],
    ),
}
# Commands cheap enough to run (no training, no data).
CHEAP = (["--version"], ["info"])


def _blocks(language):
    return [m.group(2) for m in BLOCK.finditer(TEXT) if m.group(1) == language]


def _snippet(name):
    (block,) = [b for b in _blocks("python") if SNIPPETS[name]["marker"] in b]
    return block


def _shrunk(name):
    code = _snippet(name)
    for text, replacement in SNIPPETS[name].get("shrink", ()):
        assert code.count(text) == 1, f"README's {name} snippet no longer holds {text!r}: update SNIPPETS"
        code = code.replace(text, replacement)
    return code


def _run(name, namespace):
    if "after" in SNIPPETS[name]:
        _run(SNIPPETS[name]["after"], namespace)
    exec(compile(_shrunk(name), f"README.md:{name}", "exec"), namespace)
    return namespace


def test_every_python_block_is_a_known_snippet():
    for block in _blocks("python"):
        names = [n for n, s in SNIPPETS.items() if s["marker"] in block]
        assert len(names) == 1, f"a README python block is not in SNIPPETS (or in two):\n{block[:300]}"
    assert len(_blocks("python")) == len(SNIPPETS)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write runs/ and report folders where they run
    keras.utils.set_random_seed(0)
    return tmp_path


def test_the_device_snippet_trains_a_classifier_that_learns(in_tmp):
    ns = _run("device", {})
    model, x_test, y_test = ns["model"], ns["x_test"], ns["y_test"]
    assert model.layers[-1].activation is keras.activations.softmax
    with noise_off(model):
        clean = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test))
    # With softmax, 10 epochs reach ~0.9 on the digits; the logits the loss once got reached ~0.6.
    assert clean > 0.8, clean
    assert len(device_layers(ns["drifted"])) == 1 and not device_layers(ns["plain"])


@pytest.mark.slow
def test_the_device_physics_snippet_sweeps_time(in_tmp):
    ns = _run("physics", {})
    report = ns["report"]
    assert report.param == "t" and list(report.values) == [1, 3600, 86400, 365 * 86400]
    assert ns["layer"].periphery.tile_size == (256, 256)


@pytest.mark.slow
def test_the_tuner_snippet_searches_and_returns_its_best_network(in_tmp):
    ns = _run("tuner", {})
    assert len(ns["tuner"].completed_trials()) == 2
    assert device_layers(ns["best"]) and (in_tmp / "runs" / "lenet").is_dir()


@pytest.mark.slow
def test_the_from_model_snippet_searches_your_network_and_gives_it_back_plain(in_tmp):
    ns = _run("from_model", {})
    assert ns["hypermodel"].sites == ["conv", "fc", "output"]
    assert len(ns["tuner"].completed_trials()) == 2 and device_layers(ns["best"])
    assert not device_layers(ns["plain"])
    rates = {l.name: l.rate for l in ns["plain"].layers if isinstance(l, keras.layers.Dropout)}
    assert set(rates) == {"dropout_conv", "dropout_fc", "dropout_output"} and all(0 < r < 1 for r in rates.values())


@pytest.mark.slow
def test_the_detection_snippet_reports_map_under_drift(in_tmp):
    ns = _run("detection", {})
    report = ns["report"]
    assert list(report.values) == [0, 0.3] and report.chips == 2
    assert 0.0 <= report.clean <= 1.0


def _commands():
    """Every `bayesft-keras` command line of the README's bash blocks, as argument lists."""
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "bayesft-keras":
                    commands.append(words[1:])
    return commands


def test_the_readme_shows_version_info_and_the_main_job():
    commands = _commands()
    for expected in (["--version"], ["info"], ["tune", "--arch", "vgg"], ["launch", "--workers", "2", "--preset",
                                                                         "quick", "--dir", "runs/dist"]):
        assert expected in commands, expected


@pytest.mark.parametrize("args", _commands(), ids=lambda args: " ".join(args)[:60])
def test_each_command_line_parses(args):
    group = typer.main.get_command(app)
    if args in CHEAP:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and result.output.startswith("bayesft-keras "), result.output
        return
    command = group.get_command(None, args[0])
    assert command is not None, f"unknown command {args[0]!r}"
    # Parses the options and converts their values as a run would; the command itself does not run.
    with command.make_context(args[0], list(args[1:])) as ctx:
        assert set(ctx.params) >= {p.name for p in command.params if p.required}
    result = CliRunner().invoke(app, [args[0], "--help"])
    assert result.exit_code == 0, result.output


def test_the_flags_said_to_override_the_preset_are_tunes():
    (listed,) = re.findall(r"Flags override the preset: `([^`]+)`", TEXT)
    command = typer.main.get_command(app).get_command(None, "tune")
    options = {o for p in command.params for o in p.opts}
    assert set(listed.split()) <= options, set(listed.split()) - options
