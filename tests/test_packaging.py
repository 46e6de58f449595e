"""The package as a new user gets it: a wheel built from this tree, installed in a fresh venv.

The venv sees the system's site-packages (TensorFlow, Keras and the other dependencies are not
downloaded again) but not this source tree: the commands run from a folder outside the
repository, so the presets must come from the wheel (`tuners/*.toml`, `devices/*.toml` were
once left out of it, and `tune` failed with "Unknown preset 'quick'").
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bayesft_keras
from bayesft_keras.tuning.config import load_preset

# Building the wheel and a venv, then four commands that each import TensorFlow: 30-200 s.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "src" / "bayesft_keras" / "presets"


def _run(args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["COLUMNS"] = "200"  # the help's table on one line per option
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(result):
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv's bin folder, a working folder outside the repository, the wheel's path)."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    # A copy of what the build reads, so that the build leaves nothing (build/, *.egg-info) in the tree.
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # No build isolation and no index: the installed setuptools builds it, offline.
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "-w", str(tmp / "dist"), str(source)], cwd=tmp))
    (wheel,) = (tmp / "dist").glob("bayesft_keras-*.whl")
    venv = tmp / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp))
    bin_dir = venv / "bin"
    _ok(_run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=tmp))
    work = tmp / "elsewhere"
    work.mkdir()
    return bin_dir, work, wheel


def test_the_wheel_ships_every_preset_and_the_entry_point(installed):
    wheel = installed[2]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = z.read(entry_points).decode()
    for kind in ("tuners", "devices"):
        shipped = sorted(p.name for p in (PRESETS / kind).glob("*.toml"))
        assert len(shipped) >= 3, kind
        for name in shipped:
            assert f"bayesft_keras/presets/{kind}/{name}" in names
    assert "bayesft_keras_cli.py" in names
    assert "bayesft-keras = bayesft_keras_cli:main" in entry_points


def test_the_installed_cli_runs_from_outside_the_repository(installed):
    bin_dir, work, _ = installed
    cli = str(bin_dir / "bayesft-keras")
    # The package imported is the wheel's, not this tree's nor an editable install's.
    where = _ok(_run([str(bin_dir / "python"), "-c",
                      "import importlib.util; print(importlib.util.find_spec('bayesft_keras').origin)"], work))
    assert where.strip().startswith(str(bin_dir.parent)), where
    expected = bayesft_keras.__version__  # pyproject.toml's version is this attribute
    assert _ok(_run([cli, "--version"], work)).strip() == f"bayesft-keras {expected}"
    info = _ok(_run([cli, "info"], work)).splitlines()
    assert info[0] == f"bayesft-keras {expected}" and info[1].startswith("keras 3.")
    help_text = _ok(_run([cli, "tune", "--help"], work))
    assert "Usage: bayesft-keras tune [OPTIONS]" in help_text
    quick, detection = load_preset("quick"), load_preset("detection-quick")
    assert quick.epochs != detection.epochs and quick.batch_size == detection.batch_size
    # The defaults shown are the presets' (read from the wheel).
    assert f"[default: (from the preset; quick: {quick.epochs}, detection-quick: {detection.epochs})]" in help_text
    assert f"[default: (from the preset; quick and detection-quick: {quick.batch_size})]" in help_text
    # The shipped presets resolve: 'quick' (the default) and the device 'pcm' are read, then the
    # flag that overrides them is refused, before any data is loaded.
    result = _run([cli, "tune", "--device", "pcm", "--trials", "0"], work)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == "Error: `trials` must be an integer >= 1. Received: trials=0"
