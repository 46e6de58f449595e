"""What the bridge needs to know about Keras 2 (tf_keras) models.

The device layers (the layer types `bayesft_keras.device.convert` puts on the
crossbar), model checks and loading of h5 / SavedModel files. Importing this
module requires a Keras 2 process: ``TF_USE_LEGACY_KERAS=1`` set before
TensorFlow builds ``tf.keras``.
"""

import os

from bayesft_keras.bridge.launcher import LEGACY_KERAS_VARIABLE
from bayesft_keras.bridge.launcher import is_legacy_process
from bayesft_keras.bridge.launcher import is_legacy_model_path

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
    """Whether the device computes ``layer`` (Dense, Conv1D, Conv2D, DepthwiseConv2D)."""
    return type(layer) in DEVICE_LAYER_TYPES


def kernel_attribute(layer):
    """The name of the layer's kernel attribute and the kernel's output-channel axes."""
    if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
        # An output channel is an (input channel, multiplier) pair.
        return "depthwise_kernel", (-2, -1)
    return "kernel", (-1,)


def check_legacy_model(model, fn):
    """Raises a clear ValueError unless ``model`` is a built tf_keras Sequential/Functional model."""
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


def load_legacy_model(path):
    """Loads a tf_keras model from an ``.h5`` file or a SavedModel folder (uncompiled).

    Models quantized by `bayesft_keras.bridge.tfmot_qat.quantize_model` (or by
    tfmot itself) load too.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a loadable tf_keras model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file not found: {path}")
    if not is_legacy_model_path(path):
        raise ValueError(
            f"{path} is not a Keras 2 model file: expected an .h5 file or a SavedModel "
            "folder (with saved_model.pb)."
        )
    # Quantized models need tfmot's wrappers in scope; this is a Keras 2
    # process, where tfmot may be imported.
    from bayesft_keras.bridge import tfmot_qat

    try:
        with tfmot_qat.quantize_scope():
            model = tf_keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  (a user's file can fail in any way)
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"Cannot load {path} as a tf_keras model: {reason}") from None
    if not isinstance(model, tf_keras.Model):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a tf_keras model.")
    return model
