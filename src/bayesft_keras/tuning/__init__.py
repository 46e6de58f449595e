"""The BayesFT search: drift-scored Keras Tuner tuners, presets, run directories."""

from bayesft_keras.tuning.config import TuneConfig
from bayesft_keras.tuning.config import load_preset
from bayesft_keras.tuning.objective import DriftObjective
from bayesft_keras.tuning.oracle import BayesFTOracle
from bayesft_keras.tuning.tuner import BayesFTTuner
from bayesft_keras.tuning.tuner import DriftRandomSearch
from bayesft_keras.tuning.tuner import DriftScoredTuner
