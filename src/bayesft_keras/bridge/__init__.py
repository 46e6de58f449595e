"""Bridge to Keras 2 (tf_keras) models and tensorflow-model-optimization (tfmot).

The core of bayesft-keras is Keras 3. tfmot 0.8.1 works only with Keras 2, and
importing it switches `tf.keras` to tf_keras for the whole process, so it
must never be imported next to the core. This package keeps the two apart:

- Here (safe in any process; tf_keras and tfmot are not imported):
  `evaluate_file` runs a drift sweep of a tf_keras model file in a Keras 2
  subprocess and returns the core's `DriftReport`; `is_legacy_model_path`
  tells tf_keras model files (`.h5`, SavedModel folders) apart.
- In a Keras 2 process (`TF_USE_LEGACY_KERAS=1`; importing them elsewhere
  raises ImportError): `bayesft_keras.bridge.tfmot_qat` (`quantize_model`:
  tfmot quantization-aware training on the core's device grid) and
  `bayesft_keras.bridge.legacy_drift` (`evaluate_drift_legacy`). Their names
  are also available here, imported on first use.
"""

from bayesft_keras.bridge.launcher import evaluate_file
from bayesft_keras.bridge.launcher import is_legacy_model_path
from bayesft_keras.bridge.launcher import is_legacy_process
from bayesft_keras.bridge.launcher import legacy_environment

# Names of the Keras 2 modules, imported only when first used.
_LAZY = {
    "quantize_model": "tfmot_qat",
    "quantize_scope": "tfmot_qat",
    "DeviceQuantizeConfig": "tfmot_qat",
    "DeviceWeightQuantizer": "tfmot_qat",
    "evaluate_drift_legacy": "legacy_drift",
    "load_legacy_model": "legacy_drift",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"bayesft_keras.bridge.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'bayesft_keras.bridge' has no attribute {name!r}")


__all__ = [
    "evaluate_file",
    "is_legacy_model_path",
    "is_legacy_process",
    "legacy_environment",
    *_LAZY,
]
