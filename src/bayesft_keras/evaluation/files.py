"""Evaluating a saved model file: the entry point of `bayesft-keras evaluate`.

`load_model_file` is the single place that turns a path into a Keras 3 model;
other formats (e.g. tf_keras h5 / SavedModel) plug in there.
"""

import os
import zipfile

from bayesft_keras import tasks
from bayesft_keras.utils import checks
from bayesft_keras.evaluation import validation


def load_model_file(path):
    """Loads a Keras 3 model file (`.keras`), plain or with ReRAM layers.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a loadable Keras model file.
    """
    # The ReRAM layers, noise models and baselines' objects are registered by
    # `bayesft_keras/__init__`, which Python has run before any of its modules.
    import keras

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file not found: {path}")
    if os.path.isdir(path) or not path.endswith(".keras"):
        raise ValueError(
            f"{path} is not a Keras model file: expected a `.keras` file saved with "
            "`model.save(...)`."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a Keras model file: a `.keras` file is a zip archive written "
            "by `model.save(...)`."
        )
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  (a user's file can fail in any way)
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"Cannot load {path} as a Keras model: {reason}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a Keras model.")
    return model


def load_data_for(model, dataset="digits", split="test", data_seed=0, max_examples=None):
    """Loads `dataset` and fits its `split` to `model`'s input shape.

    Images are resized / re-channelled to an image input (H, W, C); a flat
    input (features,) takes the flattened images if the sizes agree.

    Returns:
        `(x, y)` NumPy arrays.
    """
    return tasks.get(tasks.DEFAULT_TASK).load_split(model, dataset, split, data_seed, max_examples)


def evaluate_file(
    path, dataset="digits", split="test", data_seed=0, max_examples=None, name=None, **kwargs
):
    """Evaluates the model saved at `path` on a named dataset under drift.

    Args:
        path: a `.keras` model file (plain Keras or with ReRAM layers).
        dataset: a `bayesft_keras.data.load` name, or a dataset of another
            task (`bayesft_keras.tasks`), scored by that task's metric: e.g.
            "digits-detect", "voc/2007" or "coco/2017" by mAP ("map50" unless
            `metric` is "map" or "map75").
        split: "test" or "val".
        data_seed: the dataset's split seed (use the one the model was trained with).
        max_examples: evaluate on at most this many examples.
        name: the model's label (default: the file name without extension).
        **kwargs: passed to `evaluate_drift` (sigmas, chips, seed, metric, ...).

    Returns:
        A `DriftReport`.
    """
    from bayesft_keras.evaluation import engine

    # Options that need no model are checked before the (slow) model load.
    if "chips" in kwargs:
        checks.positive_int("chips", kwargs["chips"])
    if "seed" in kwargs:
        checks.seed(kwargs["seed"])
    if kwargs.get("values") is not None:
        validation.check_values(kwargs["values"])
    if max_examples is not None and (isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"`max_examples` must be an integer >= 1. Received: max_examples={max_examples!r}")
    model = load_model_file(path)
    task = tasks.for_dataset(dataset, kwargs.get("metric"))
    x, y = task.load_split(model, dataset, split, data_seed, max_examples)
    metric = task.evaluation_metric(kwargs.get("metric"))
    if metric is not None:
        kwargs["metric"] = metric
    if name is None:
        name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return engine.evaluate_drift(model, (x, y), name=name, dataset=f"{dataset}/{split}", **kwargs)

