"""What the bridge needs to know about Keras 2 (tf_keras) models.

The device layers (the layer types `bayesft_keras.device.convert` puts on the
crossbar) and model checks; `bayesft_keras.bridge.legacy_drift` loads h5 /
SavedModel files (it needs tfmot's scope, and tfmot_qat needs this module). Importing this
module requires a Keras 2 process: `TF_USE_LEGACY_KERAS=1` set before
TensorFlow builds `tf.keras`.
"""

from bayesft_keras.bridge.launcher import LEGACY_KERAS_VARIABLE
from bayesft_keras.bridge.launcher import is_legacy_process

if not is_legacy_process():
    raise ImportError(
        "bayesft_keras.bridge works on Keras 2 (tf_keras) models and must run in a Keras 2 "
        f"process: set {LEGACY_KERAS_VARIABLE}=1 before TensorFlow is imported (e.g. "
        f"`{LEGACY_KERAS_VARIABLE}=1 python train.py`). From a Keras 3 process, use "
        "`bayesft_keras.bridge.evaluate_file`, which starts one."
    )

import tf_keras  # noqa: E402

# The layers the device computes, as in `bayesft_keras.device.convert` (exact types).
DEVICE_LAYER_TYPES = (
    tf_keras.layers.Dense,
    tf_keras.layers.Conv1D,
    tf_keras.layers.Conv2D,
    tf_keras.layers.DepthwiseConv2D,
)


def is_device_layer(layer):
    """Whether the device computes `layer` (Dense, Conv1D, Conv2D, DepthwiseConv2D)."""
    return type(layer) in DEVICE_LAYER_TYPES


def kernel_attribute(layer):
    """The name of the layer's kernel attribute and the kernel's output-channel axes."""
    if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
        # An output channel is an (input channel, multiplier) pair.
        return "depthwise_kernel", (-2, -1)
    return "kernel", (-1,)


def check_legacy_model(model, fn):
    """Raises a clear ValueError unless `model` is a built tf_keras Sequential/Functional model."""
    if not isinstance(model, tf_keras.Model):
        hint = ""
        if type(model).__module__.split(".")[0] == "keras":
            hint = (
                " This is a Keras 3 model: use the core (`bayesft_keras.device.convert`, "
                "`bayesft_keras.evaluation.evaluate_drift`) instead."
            )
        raise ValueError(
            f"`model` of {fn}() must be a Keras 2 (tf_keras) model. Received: model of type "
            f"{type(model).__module__}.{type(model).__name__}.{hint}"
        )
    if not (isinstance(model, tf_keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ValueError(
            f"`model` of {fn}() must be a Sequential or Functional tf_keras model. "
            f"Received: a subclassed model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(f"`model` of {fn}() must be built. Call it on data or build it first.")
