"""The device layers and the shared trial model on the PyTorch backend: their tests, run in a subprocess.

The Keras backend is fixed per process, so the torch run needs its own.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
HAS_TORCH = importlib.util.find_spec("torch") is not None


NEEDS_TORCH = pytest.mark.skipif(
    not HAS_TORCH and not os.environ.get("CI"),
    reason="torch not installed (pip install torch==2.13.0); CI requires it",
)


def _pytest_on_torch(*args):
    """Runs pytest on `args` in a process of its own on the torch backend; asserts it passed."""
    env = dict(os.environ, KERAS_BACKEND="torch")
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        env=env, capture_output=True, text=True, timeout=900,
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1], tail


@NEEDS_TORCH
@pytest.mark.slow
def test_layer_noise_and_quantizer_tests_pass_on_torch():
    _pytest_on_torch(*(str(TESTS / f) for f in ("test_layers.py", "test_noise.py", "test_quantization.py")))


@NEEDS_TORCH
@pytest.mark.slow
def test_a_reused_trial_equals_a_fresh_one_on_torch():
    _pytest_on_torch(str(TESTS / "test_compile_once.py"), "-k", "equals or falls_back or own_model or site_dropout")
