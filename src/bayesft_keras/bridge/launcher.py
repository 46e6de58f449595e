"""Runs the bridge in a Keras 2 subprocess, from any process (the Keras 3 core's too).

Neither tf_keras nor tensorflow-model-optimization is imported here: a Keras 3
process can call `evaluate_file` without ever importing them.
The child is `python -m bayesft_keras.bridge evaluate ...` with
`TF_USE_LEGACY_KERAS=1`; it reports progress as protocol lines on stdout and
writes the `DriftReport` as JSON, which is read back here.
"""

import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile

from bayesft_keras.evaluation import progress as progress_lib
from bayesft_keras.evaluation import validation
from bayesft_keras.utils import checks

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"
# Lines of the child's output that carry progress: "<prefix> <done> <total>".
PROGRESS_PREFIX = "@bayesft-bridge-progress"
_ERROR_PREFIX = "Error: "
_LEGACY_SUFFIXES = (".h5", ".hdf5")


def is_legacy_process():
    """Whether this process's `tf.keras` is (or will be) Keras 2 (tf_keras)."""
    return os.environ.get(LEGACY_KERAS_VARIABLE) in ("1", "true", "True")


def is_legacy_model_path(path):
    """Whether `path` is a Keras 2 model: an `.h5` file or a SavedModel folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "saved_model.pb"))
    return path.lower().endswith(_LEGACY_SUFFIXES)


def legacy_environment(base=None):
    """Environment variables of a Keras 2 child process running this copy of bayesft_keras."""
    env = dict(os.environ if base is None else base)
    env[LEGACY_KERAS_VARIABLE] = "1"
    # The bridge computes device noise with Keras 3 ops on TensorFlow tensors.
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    source_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [source_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def evaluate_file(
    path,
    dataset="digits",
    split="test",
    data_seed=0,
    max_examples=None,
    name=None,
    *,
    values=None,
    sigmas=None,
    chips=20,
    seed=0,
    metric="accuracy",
    threshold=None,
    bits=None,
    noise=None,
    param=None,
    batch_size=None,
    progress=True,
):
    """Drift sweep of a Keras 2 model file (h5 / SavedModel) in a tf_keras subprocess.

    The counterpart of `bayesft_keras.evaluation.evaluate_file` for tf_keras
    models, with the same arguments and the same `DriftReport`; safe to call
    from a Keras 3 process (tfmot and tf_keras are imported only in the child).

    Args:
        path: an `.h5` file or a SavedModel folder written by tf_keras, plain
            or quantized by `bayesft_keras.bridge.tfmot_qat.quantize_model`.
        dataset, split, data_seed, max_examples, name: as in
            `bayesft_keras.evaluation.evaluate_file`.
        values / sigmas: the swept values (default: sigma 0, 0.05, ..., 1.5).
        chips, seed, threshold, bits, param, batch_size: as in `evaluate_drift`.
        metric: "accuracy" or a Keras metric name.
        noise: a `bayesft_keras.device.noise` model (or its config), or None.
        progress: True shows a bar; a callable `(done, total)` is called as
            chips finish; False is silent.

    Returns:
        A `bayesft_keras.evaluation.DriftReport`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: bad input, or the child failed (its error as one line).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file not found: {path}")
    if sigmas is not None and values is not None:
        raise ValueError("Give `sigmas` or `values`, not both.")
    values = sigmas if values is None else values
    if not isinstance(metric, str):
        raise ValueError(
            "`metric` must be 'accuracy' or a Keras metric name for a model evaluated in a "
            f"subprocess. Received: metric={metric!r}"
        )
    _check_options(values, chips, seed, threshold, bits, max_examples, batch_size)
    with tempfile.TemporaryDirectory(prefix="bayesft-bridge-") as out:
        args = [path, "--out", out, "--formats", "json", "--progress", "lines"]
        options = {
            "--dataset": dataset,
            "--split": split,
            "--data-seed": data_seed,
            "--max-examples": max_examples,
            "--name": name,
            "--chips": chips,
            "--seed": seed,
            "--metric": metric,
            "--threshold": threshold,
            "--bits": bits,
            "--param": param,
            "--batch-size": batch_size,
        }
        if values is not None:
            options["--values"] = ",".join(repr(float(v)) for v in _as_list(values))
        if noise is not None:
            options["--noise"] = json.dumps(_serialize_noise(noise))
        for flag, value in options.items():
            if value is not None:
                args += [flag, str(value)]
        _run_child(["evaluate"] + args, progress)
        from bayesft_keras.evaluation.report import DriftReport

        return DriftReport.from_json(os.path.join(out, "report.json"))


def _run_child(args, progress):
    """Runs `python -m bayesft_keras.bridge ARGS`, streaming its progress."""
    command = [sys.executable, "-m", "bayesft_keras.bridge"] + list(args)
    tail = collections.deque(maxlen=20)
    error = None
    with _progress(progress) as on_progress:
        child = subprocess.Popen(
            command,
            env=legacy_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        try:
            for line in child.stdout:
                line = line.rstrip("\n")
                if line.startswith(PROGRESS_PREFIX):
                    done, total = (int(n) for n in line.split()[1:3])
                    on_progress(done, total)
                elif line.startswith(_ERROR_PREFIX):
                    error = line[len(_ERROR_PREFIX) :]
                elif line.strip():
                    tail.append(line)
            returncode = child.wait()
        except BaseException:  # e.g. KeyboardInterrupt: do not leave the child running
            child.kill()
            child.wait()
            raise
    if returncode == 0:
        return
    if error is not None:
        raise ValueError(error)
    last = tail[-1].strip() if tail else "no output"
    raise ValueError(f"The tf_keras bridge subprocess failed (exit code {returncode}): {last}")


@contextlib.contextmanager
def _progress(progress):
    """Yields `on_progress(done, total)` for `progress` (bool or callable).

    The child reports the total with its first progress line, so the shared
    bar starts then.
    """
    if callable(progress) or not progress:
        yield progress or (lambda done, total: None)
        return
    with contextlib.ExitStack() as stack:
        advance, reported = None, 0

        def on_progress(done, total):
            nonlocal advance, reported
            if advance is None:
                advance = stack.enter_context(progress_lib.progress(True, total, "tf_keras drift sweep"))
            advance(done - reported)
            reported = done

        yield on_progress


def _check_options(values, chips, seed, threshold, bits, max_examples, batch_size):
    # What can be checked without the model, here: no subprocess for bad input.
    from bayesft_keras.device import quantization

    if values is not None:
        validation.check_values(values)
    checks.positive_int("chips", chips)
    checks.seed(seed)
    validation.check_threshold(threshold)
    quantization.validate_bits(bits, "bits")
    checks.positive_int("max_examples", max_examples, allow_none=True)
    checks.positive_int("batch_size", batch_size, allow_none=True)


def _as_list(values):
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"`values` must be a list of numbers. Received: values={values!r}") from None


def _serialize_noise(noise):
    if isinstance(noise, dict):
        return noise
    from bayesft_keras.device import noise as noise_lib

    return noise_lib.serialize(noise_lib.get(noise))
