"""bayesft-keras: ReRAM drift simulation and BayesFT dropout search for Keras 3."""

from bayesft_keras import architectures
from bayesft_keras import baselines
from bayesft_keras import evaluation
from bayesft_keras.device import layers
from bayesft_keras.device import conductance
from bayesft_keras.device import noise
from bayesft_keras.device import periphery
from bayesft_keras.device import physics
from bayesft_keras.device import quantization
from bayesft_keras.device.chip import chip
from bayesft_keras.device.chip import device_layers
from bayesft_keras.device.chip import noise_off
from bayesft_keras.device.chip import resample
from bayesft_keras.device.chip import set_noise
from bayesft_keras.device.chip import set_noise_enabled
from bayesft_keras.device.chip import set_noise_params
from bayesft_keras.device.convert import convert
from bayesft_keras.device.convert import to_keras
from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
from bayesft_keras.tuning.hypermodel import NoiseInjectionHyperModel
from bayesft_keras.evaluation import DriftReport
from bayesft_keras.evaluation import evaluate_drift
from bayesft_keras.device.layers import ReRAMConv1D
from bayesft_keras.device.layers import ReRAMConv2D
from bayesft_keras.device.layers import ReRAMDense
from bayesft_keras.device.layers import ReRAMDepthwiseConv2D
from bayesft_keras.device.noise import Compose
from bayesft_keras.device.noise import LogNormalDrift
from bayesft_keras.device.noise import ProgrammingNoise
from bayesft_keras.device.noise import StuckAtFaults
from bayesft_keras.device.conductance import DifferentialPair
from bayesft_keras.device.conductance import SingleDevice
from bayesft_keras.device.periphery import Periphery
from bayesft_keras.device.physics import OnConductances
from bayesft_keras.device.physics import PCMLikeNoise
from bayesft_keras.device.physics import PolynomialProgrammingNoise
from bayesft_keras.device.physics import PowerLawDrift
from bayesft_keras.device.physics import ReadNoise
from bayesft_keras.device.physics import ReRamCMONoise
from bayesft_keras.tuning.schedules import OneCycle

__version__ = "0.1.0"
