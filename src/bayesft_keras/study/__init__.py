"""The component study: which network components tolerate weight drift.

`run_study` trains variants of a network that each change one component of a
baseline (dropout and its rate, normalization, depth, activation) over
several seeds, scores them on simulated drifted chips, and writes a CSV, a
markdown table, one plot per component and a summary whose statements ("dropout
0.5 helps at σ ≥ 0.75 ...") are computed from the numbers.
"""

from bayesft_keras.study.runner import DEFAULT_CHIPS
from bayesft_keras.study.runner import DEFAULT_EPOCHS
from bayesft_keras.study.runner import DEFAULT_SEEDS
from bayesft_keras.study.runner import DEFAULT_SIGMAS
from bayesft_keras.study.runner import StudyResult
from bayesft_keras.study.runner import run_study
from bayesft_keras.study.summary import Comparison
from bayesft_keras.study.summary import ComponentResult
from bayesft_keras.study.summary import Run
from bayesft_keras.study.summary import VariantStats
from bayesft_keras.study.variants import BASELINE
from bayesft_keras.study.variants import COMPONENTS
from bayesft_keras.study.variants import DEFAULT_GRID
from bayesft_keras.study.variants import Variant
from bayesft_keras.study.variants import make_grid

__all__ = [
    "BASELINE",
    "COMPONENTS",
    "DEFAULT_CHIPS",
    "DEFAULT_EPOCHS",
    "DEFAULT_GRID",
    "DEFAULT_SEEDS",
    "DEFAULT_SIGMAS",
    "Comparison",
    "ComponentResult",
    "Run",
    "StudyResult",
    "Variant",
    "VariantStats",
    "make_grid",
    "run_study",
]
