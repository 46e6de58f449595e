"""Public checks of what the drift evaluator is given: the model, the data, the swept parameter.

The bridge and the CLI use them too, so that every entry point rejects bad input with the same words.
Scalar checks (`chips`, `seed`, ...) live in `bayesft_keras.utils.checks`.
"""

import keras
import numpy as np
from keras import ops

from bayesft_keras.utils import checks
from bayesft_keras.utils.values import is_sigma  # noqa: F401  (public here too)


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


def check_data(model, x, y, metric=None, num_classes=None):
    """Returns `x, y` as NumPy arrays, checked against the model.

    Always: one label per example, examples of the model's input shape, and
    finite inputs (a NaN or infinite pixel makes every chip's score
    meaningless). With `metric` "accuracy" the labels must also fit the
    model's output (`check_labels`): class indices in [0, classes), or one-hot
    rows of the model's width. Other metrics (a Keras metric, a callable, a
    decoder such as FTNA's) define their own labels and get no label check.

    Args:
        model: the `keras.Model` the data is for.
        x, y: the inputs and labels.
        metric: the metric the data is scored by (None: no label check).
        num_classes: the number of classes of the dataset, when known (a
            `Dataset`): with "accuracy" it must equal the model's.
    """
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
    check_finite_inputs(x, "x")
    if is_accuracy(metric):
        check_labels(model, y, num_classes)
    if np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
        x = x.astype("float32")
    if np.issubdtype(y.dtype, np.integer) and y.dtype != np.int32:
        y = y.astype("int32")
    elif np.issubdtype(y.dtype, np.floating) and y.dtype != np.float32:
        y = y.astype("float32")
    return x, y


def is_accuracy(metric):
    """Whether `metric` is the evaluator's accuracy ("accuracy" or "acc"), whose labels are classes."""
    return isinstance(metric, str) and metric.lower() in ("accuracy", "acc")


def check_finite_inputs(x, name="x"):
    """Raises when the inputs `x` hold NaN or an infinity (`checks.finite_array`)."""
    checks.finite_array(name, x, owner="`data`")


def output_classes(model):
    """The model's number of output classes: the last dimension of a single output (None if unknown)."""
    try:
        shape = model.output_shape
    except Exception:  # noqa: BLE001  (a subclassed model has no static output shape)
        return None
    if isinstance(shape, list) or not isinstance(shape, tuple) or len(shape) < 2:
        return None
    return shape[-1] if isinstance(shape[-1], int) and shape[-1] >= 1 else None


def check_labels(model, y, num_classes=None):
    """Raises unless labels `y` are classes of the model's output, as `metrics.Accuracy` reads them.

    - one output unit (a sigmoid): labels 0 or 1;
    - `y` of shape (n, classes) (one-hot): finite values in [0, 1];
    - otherwise (class indices, shape (n,) or (n, 1)): integers in [0, classes).

    `num_classes` (the dataset's, when known) must equal the model's classes
    (a single sigmoid output counts as 2).
    """
    classes = output_classes(model)
    if classes is None:
        return
    name = getattr(model, "name", "model")
    if num_classes is not None and num_classes != (2 if classes == 1 else classes):
        raise ValueError(
            f"Model {name!r} has {classes} output class{'es' if classes != 1 else ''}, but the data "
            f"has {num_classes}: "
            "evaluate a model on data of its own classes."
        )
    y = np.asarray(y)
    if classes > 1 and y.ndim >= 2 and y.shape[-1] == classes:
        values = y.astype("float64", copy=False)
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            raise ValueError(
                f"`data` one-hot labels for model {name!r} must be finite numbers in [0, 1]. "
                f"Received: labels from {np.nanmin(values)!r} to {np.nanmax(values)!r}"
            )
        return
    if y.ndim > 2 or (y.ndim == 2 and y.shape[-1] != 1):
        return  # a shape the accuracy metric itself refuses, with its own message
    if not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise ValueError(
            f"`data` labels must be class indices (numbers). Received: labels of dtype {y.dtype}"
        )
    labels = y.reshape(-1).astype("float64")
    top = 2 if classes == 1 else classes
    bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0) | (labels >= top)
    if bad.any():
        first = int(np.argmax(bad))
        value = y.reshape(-1)[first]
        finite = labels[np.isfinite(labels)]
        hint = ""
        if finite.size and finite.max() >= top and finite.min() >= 0:
            hint = (
                f"; the labels go up to {finite.max():g}, so the data has at least "
                f"{int(finite.max()) + 1} classes"
            )
        what = "the single (sigmoid) output" if classes == 1 else f"the {classes} output classes"
        raise ValueError(
            f"`data` labels must be integers in [0, {top}) for {what} of model {name!r}{hint}. "
            f"Received: {int(bad.sum())} label(s) that are not, the first y[{first}]={value.item()!r}"
        )


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


def check_values(values):
    """The swept values: a non-empty list of finite numbers."""
    return checks.number_list("values", values)


def check_threshold(threshold):
    """A yield threshold: `None` or a score in [0, 1] (a chip at or above it passes)."""
    if threshold is None:
        return None
    return checks.in_range("threshold", threshold, 0, 1)
