"""`bayesft-keras --help`, `--version` and each command's help, as a new user reads them."""

import importlib.metadata
import re

import pytest
from typer.testing import CliRunner

import bayesft_keras
from bayesft_keras import presets
from bayesft_keras.cli import app
from bayesft_keras.cli.help_format import preset_defaults
from bayesft_keras.tuning.config import load_preset

COMMANDS = ("info", "evaluate", "plot", "tune", "study", "launch")


def _help(*args):
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _row(output, option):
    """The help table's row of `option`: its line and the lines its help wraps onto, joined."""
    lines = output.splitlines()
    (start,) = [i for i, line in enumerate(lines) if re.search(rf"│[ *]+{re.escape(option)}(?![\w-])", line)]
    row = [lines[start]]
    for line in lines[start + 1:]:
        if re.match(r"│[ *]+-", line) or not line.startswith("│"):
            break
        row.append(line)
    return " ".join(" ".join(line.strip("│ ").split()) for line in row)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_no_flag_prints_a_type_and_options_with_values_keep_theirs(command):
    output = _help(*([command] if command else []))
    assert "<bool>" not in output
    # Nothing but spaces between a flag and its help.
    assert re.search(r"│ +--help +Show this message and exit\. +│", output), output
    if command == "evaluate":
        assert "<int>" in _row(output, "--chips") and "<str>" in _row(output, "--dataset")


def test_the_root_help_lists_version_and_the_commands():
    output = _help()
    assert "Usage: bayesft-keras [OPTIONS] COMMAND [ARGS]..." in output
    assert re.search(r"│ --version +Show the version and exit\. +│", output)
    for command in COMMANDS:
        assert re.search(rf"│ {command} ", output), command


def test_evaluate_usage_names_its_argument_as_click_does():
    output = _help("evaluate")
    assert "Usage: bayesft-keras evaluate [OPTIONS] MODEL" in output
    assert "{model}" not in output


def test_plot_usage_writes_several_arguments_with_dots():
    output = _help("plot")
    (usage,) = [line.strip() for line in output.splitlines() if "Usage:" in line]
    assert re.fullmatch(r"Usage: bayesft-keras plot \[OPTIONS\] [A-Z_]+\.\.\.", usage), usage


def test_tune_help_shows_the_presets_values_as_defaults():
    output = _help("tune")
    quick, detection = load_preset("quick"), load_preset("detection-quick")
    assert quick.epochs != detection.epochs and quick.trials == detection.trials
    assert _row(output, "--epochs").endswith(
        f"[default: (from the preset; quick: {quick.epochs}, detection-quick: {detection.epochs})]"
    )
    assert f"[default: (from the preset; quick and detection-quick: {quick.trials})]" in _row(output, "--trials")
    assert f"quick: {quick.bits}, detection-quick: none)]" in _row(output, "--bits")
    assert _row(output, "--baselines").endswith(f"(from the preset; quick and detection-quick: {','.join(quick.baselines)})]")
    # The task picks the preset; a field no preset sets (data_dir) and options of no preset field
    # (--dir, --chief) show no preset value.
    for option in ("--task", "--preset", "--data-dir", "--dir", "--chief"):
        assert "from the preset" not in _row(output, option), option
    assert "[default: none]" in _row(output, "--distribute")  # a real default is left as it was


def test_preset_defaults_name_each_preset_and_merge_equal_values():
    quick = load_preset("quick")
    texts = preset_defaults(["sigma", "seed", "data_dir"])
    assert texts["sigma"] == f"from the preset; quick: {quick.sigma}, detection-quick: {load_preset('detection-quick').sigma}"
    assert texts["seed"] == f"from the preset; quick and detection-quick: {quick.seed}"
    assert "data_dir" not in texts  # None in every preset


def test_version_prints_the_installed_version_and_info_agrees():
    try:
        expected = importlib.metadata.version("bayesft-keras")
    except importlib.metadata.PackageNotFoundError:
        expected = bayesft_keras.__version__
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"bayesft-keras {expected}\n")
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0 and result.output.splitlines()[0] == f"bayesft-keras {expected}"
    assert re.fullmatch(r"keras 3\.\S+ \(backend: \w+\)", result.output.splitlines()[1])


def test_a_preset_folder_of_another_kind_is_refused():
    with pytest.raises(ValueError, match=r"`kind` must be one of \['tuners', 'devices'\]\. Received: kind='models'"):
        presets.folder("models")
    assert presets.find("tuners", "no-such-preset") is None
    assert "quick" in presets.names("tuners") and "pcm" in presets.names("devices")
