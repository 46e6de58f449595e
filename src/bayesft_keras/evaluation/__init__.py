"""Monte Carlo drift evaluation: how accurate is a model on drifted chips.

`evaluate_drift` sweeps a device-noise parameter and scores many simulated
chips per value with one compiled forward pass (a `DriftEvaluator`);
`DriftReport` holds every chip's metric with summaries, yield and JSON/CSV
files, and renders a terminal table and plots (`rendering`).
"""

from bayesft_keras.device.seeds import chip_seed_grid
from bayesft_keras.evaluation.engine import DEFAULT_CHIPS
from bayesft_keras.evaluation.engine import DEFAULT_SIGMAS
from bayesft_keras.evaluation.engine import evaluate_drift
from bayesft_keras.evaluation.evaluator import DriftEvaluator
from bayesft_keras.evaluation.files import evaluate_file
from bayesft_keras.evaluation.files import load_model_file
from bayesft_keras.evaluation.rendering import plot_reports
from bayesft_keras.evaluation.report import DriftReport

__all__ = [
    "DEFAULT_CHIPS",
    "DEFAULT_SIGMAS",
    "DriftEvaluator",
    "DriftReport",
    "chip_seed_grid",
    "evaluate_drift",
    "evaluate_file",
    "load_model_file",
    "plot_reports",
]
