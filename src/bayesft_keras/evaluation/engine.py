"""`evaluate_drift`: how accurate is a model on drifted chips, across a parameter sweep.

A sweep evaluates a model on `chips` simulated chips for each value of one
device-noise parameter (by default the drift sigma), with a `DriftEvaluator`
(`bayesft_keras.evaluation.evaluator`), and returns a `DriftReport`.

Chip `c` at value index `v` is chip seed
`SeedSequence([seed, v, c])` (`bayesft_keras.device.seeds.chip_seed_grid`):
every value gets its own independent chips and the same seed reproduces a
sweep bit for bit. The realization equals
`bayesft_keras.resample(model, chip_seed)`, so any chip of a report can be
rebuilt by hand. A sweep over a *time* parameter (`t` of the device physics
models) reads the same chips at every value instead (those of value index 0):
a chip is programmed once and read at every time.
"""

import numpy as np

from bayesft_keras.device import noise as noise_lib
from bayesft_keras.device.seeds import chip_seed_grid
from bayesft_keras.evaluation import progress as progress_lib
from bayesft_keras.evaluation import validation
from bayesft_keras.evaluation.evaluator import DEFAULT_BATCH_SIZE  # noqa: F401 
from bayesft_keras.evaluation.evaluator import DriftEvaluator
from bayesft_keras.evaluation.report import DriftReport
from bayesft_keras.utils import checks
from bayesft_keras.utils import values as values_lib

# The paper's robustness curves: sigma = 0, 0.05, ..., 1.5, 20 chips each.
DEFAULT_SIGMAS = tuple(np.round(np.linspace(0.0, 1.5, 31), 10).tolist())
DEFAULT_CHIPS = 20


def evaluate_drift(
    model,
    data,
    sigmas=None,
    chips=DEFAULT_CHIPS,
    metric="accuracy",
    seed=0,
    *,
    noise=None,
    param=None,
    values=None,
    bits=None,
    threshold=None,
    batch_size=None,
    chips_per_pass=None,
    jit_compile=False,
    name=None,
    dataset=None,
    progress=True,
    periphery=None,
    evaluator=None,
):
    """Evaluates `model` on simulated drifted chips across a parameter sweep.

    For each value of the swept device parameter (by default the drift sigma,
    0 to 1.5 in 31 steps as in the BayesFT paper) `chips` independent chips
    are drawn and scored; the report keeps every chip's metric, so mean,
    spread, percentiles and yield can all be read from it.

    Args:
        model: a built Sequential or Functional `keras.Model`: plain Keras
            (converted internally) or with ReRAM layers (their device settings
            are kept). Never modified.
        data: `(x, y)` arrays, or a `bayesft_keras.data.Dataset` (its test
            split is used).
        sigmas: sigma values to sweep (shorthand for `values` when the swept
            parameter is a sigma). Default: 0, 0.05, ..., 1.5.
        chips: chips drawn per value, >= 1.
        metric: "accuracy" (default), a Keras metric name or instance, or a
            callable `(y_true, y_pred) -> scalar` on NumPy arrays.
        seed: non-negative int; the same seed gives the same report.
        noise: device noise model to use (default: the model's own, else
            `LogNormalDrift`).
        param: the noise parameter to sweep, e.g. "sigma" or "p_low" (default:
            the sigma of the noise model).
        values: the parameter values to sweep (required for non-sigma params).
        bits: device weight precision (None keeps the model's).
        threshold: yield threshold: the report's yield is the fraction of chips
            whose metric is at or above it.
        batch_size: examples per forward pass (default: all, up to 2048).
        chips_per_pass: how many chips may run at once (default: up to 4,
            within an activation memory budget).
        jit_compile: TensorFlow only: compile with XLA.
        name: the model's label in the report (default: `model.name`).
        dataset: the data's label in the report.
        progress: True shows a progress bar; a callable `(done, total)` is
            called after every value with the number of chips done; False
            is silent.
        periphery: a `bayesft_keras.device.periphery.Periphery` (tiles, ADC, drift
            compensation) for every ReRAM layer; None keeps the model's.
        evaluator: a `DriftEvaluator` of `model` to score with instead of a new
            one: its compiled pass is reused (a search scores every trial's
            weights with one evaluator). It is synced to `model`'s weights, and
            `noise`, `bits`, `metric` and the rest are its own.

    A time parameter (e.g. `param="t", values=[1, 3600, 86400, 3.15e7]`
    with `bayesft_keras.device.physics.PCMLikeNoise`) reads the same chips at every
    value: one programmed chip per chip index, read at every time.

    Returns:
        A `DriftReport`.
    """
    chips = checks.positive_int("chips", chips)
    seed = checks.seed(seed)
    threshold = validation.check_threshold(threshold)
    if sigmas is not None and values is not None:
        raise ValueError("Give `sigmas` or `values`, not both.")
    x, y, data_name = validation.unpack_data(data)
    validation.check_model(model)
    validation.check_data(model, x, y, metric=metric, num_classes=getattr(data, "num_classes", None))
    if evaluator is None:
        evaluator = DriftEvaluator(
            model,
            noise=noise,
            bits=bits,
            metric=metric,
            batch_size=batch_size,
            chips_per_pass=chips_per_pass,
            jit_compile=jit_compile,
            periphery=periphery,
        )
    else:
        evaluator.sync_weights()
    param = evaluator.resolve_param(param)
    values = values_lib.sweep_values(param, sigmas, values, DEFAULT_SIGMAS)
    values = evaluator.check_values(param, values)
    evaluator.set_data(x, y)
    if param in evaluator.time_params:
        grid = np.repeat(chip_seed_grid(seed, 1, chips), len(values), axis=0)
    else:
        grid = chip_seed_grid(seed, len(values), chips)
    with progress_lib.progress(progress, len(values) * chips, f"{name or model.name}: {param} sweep") as advance:
        clean = evaluator.clean_metric()
        per_chip = evaluator.sweep(param, values, grid, on_progress=advance)
    return DriftReport(
        values=np.asarray(values, dtype="float64"),
        chip_metrics=per_chip,
        clean=clean,
        param=param,
        metric=evaluator.metric.name,
        model_name=name or model.name,
        seed=seed,
        noise=noise_lib.serialize(evaluator.noise),
        bits=evaluator.layers[0].bits,
        threshold=threshold,
        num_examples=evaluator.num_examples,
        dataset=dataset or data_name,
        chip_seeds=grid,
    )
