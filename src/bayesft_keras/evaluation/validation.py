"""Public checks of what the drift evaluator is given: the model, the data, the swept parameter.

The bridge and the CLI use them too, so that every entry point rejects bad input with the same words.
Scalar checks (`chips`, `seed`, ...) live in `bayesft_keras.utils.checks`.
"""

import keras
import numpy as np
from keras import ops

from bayesft_keras.utils import checks


def check_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a Keras 3 `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError("`model` must be built. Call it on data or build it first.")


def unpack_data(data):
    from bayesft_keras.data import Dataset

    if isinstance(data, Dataset):
        return data.x_test, data.y_test, data.name
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1], None
    raise ValueError(
        "`data` must be a pair (x, y) of arrays or a bayesft_keras.data.Dataset (its "
        f"test split is used). Received: data of type {type(data).__name__}"
    )


def check_data(model, x, y):
    """Returns ``x, y`` as NumPy arrays, checked against the model's input shape."""
    try:
        x = np.asarray(ops.convert_to_numpy(x))
        y = np.asarray(ops.convert_to_numpy(y))
    except Exception as e:  # noqa: BLE001  (any unconvertible input)
        raise ValueError(f"`data` must be arrays (x, y): {e}") from None
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"`data` has no examples. Received: x of shape {x.shape}")
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(
            f"`data` must have one label per example. Received: x of shape {x.shape}, "
            f"y of shape {y.shape}"
        )
    expected = input_shape(model)
    if expected is not None:
        received = tuple(x.shape[1:])
        if len(received) != len(expected) or any(
            e is not None and e != r for e, r in zip(expected, received)
        ):
            shown = tuple("?" if e is None else e for e in expected)
            raise ValueError(
                f"`data` examples of shape {received} do not match the model's input "
                f"shape {shown}."
            )
    if np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
        x = x.astype("float32")
    if np.issubdtype(y.dtype, np.integer) and y.dtype != np.int32:
        y = y.astype("int32")
    elif np.issubdtype(y.dtype, np.floating) and y.dtype != np.float32:
        y = y.astype("float32")
    return x, y


def input_shape(model):
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(
                f"Model {model.name!r} has {len(shape)} inputs; drift evaluation needs one."
            )
        shape = shape[0]
    return tuple(shape[1:])


def is_sigma(param):
    return param == "sigma" or param.endswith(".sigma")


def check_values(values):
    """The swept values: a non-empty list of finite numbers."""
    return checks.number_list("values", values)


def check_threshold(threshold):
    """A yield threshold: `None` or a finite number."""
    return checks.finite("threshold", threshold, allow_none=True)
