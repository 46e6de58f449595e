"""bayesft-keras: ReRAM drift simulation and BayesFT dropout search for Keras 3."""

from bayesft_keras import architectures
from bayesft_keras import baselines
from bayesft_keras import evaluation
from bayesft_keras import layers
from bayesft_keras import conductance
from bayesft_keras import noise
from bayesft_keras import periphery
from bayesft_keras import physics
from bayesft_keras import quantization
from bayesft_keras.chip import chip
from bayesft_keras.chip import device_layers
from bayesft_keras.chip import noise_off
from bayesft_keras.chip import resample
from bayesft_keras.chip import set_noise
from bayesft_keras.chip import set_noise_enabled
from bayesft_keras.chip import set_noise_params
from bayesft_keras.convert import convert
from bayesft_keras.convert import to_keras
from bayesft_keras.hypermodel import BayesFTHyperModel
from bayesft_keras.hypermodel import NoiseInjectionHyperModel
from bayesft_keras.evaluation import DriftReport
from bayesft_keras.evaluation import evaluate_drift
from bayesft_keras.layers import ReRAMConv1D
from bayesft_keras.layers import ReRAMConv2D
from bayesft_keras.layers import ReRAMDense
from bayesft_keras.layers import ReRAMDepthwiseConv2D
from bayesft_keras.noise import Compose
from bayesft_keras.noise import LogNormalDrift
from bayesft_keras.noise import ProgrammingNoise
from bayesft_keras.noise import StuckAtFaults
from bayesft_keras.conductance import DifferentialPair
from bayesft_keras.conductance import SingleDevice
from bayesft_keras.periphery import Periphery
from bayesft_keras.physics import OnConductances
from bayesft_keras.physics import PCMLikeNoise
from bayesft_keras.physics import PolynomialProgrammingNoise
from bayesft_keras.physics import PowerLawDrift
from bayesft_keras.physics import ReadNoise
from bayesft_keras.physics import ReRamCMONoise
from bayesft_keras.schedules import OneCycle

__version__ = "0.1.0"
