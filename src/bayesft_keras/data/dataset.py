import dataclasses

import numpy as np

from bayesft_keras.utils import checks


@dataclasses.dataclass
class Dataset:
    """Image-classification data with explicit train/validation/test splits.

    Images are float32 NHWC in [0, 1]; labels are int32 class indices.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def check(self):
        """Returns this dataset after checking it; raises `ValueError` naming the dataset and the split.

        Images must be finite (a NaN pixel trains a network to NaN and scores
        every chip at chance), labels integers in [0, num_classes), and each
        split must hold one label per image. `bayesft_keras.data.load` checks
        every dataset it returns, once.
        """
        owner = f"dataset {self.name!r}"
        checks.positive_int("num_classes", self.num_classes)
        for part in ("train", "val", "test"):
            x, y = np.asarray(getattr(self, f"x_{part}")), np.asarray(getattr(self, f"y_{part}"))
            if y.ndim != 1 or len(y) != len(x):
                raise ValueError(
                    f"`y_{part}` of {owner} must hold one class index per image. Received: "
                    f"x_{part} of shape {x.shape}, y_{part} of shape {y.shape}"
                )
            checks.finite_array(f"x_{part}", x, owner=owner)
            check_class_labels(f"y_{part}", y, self.num_classes, owner)
        return self

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def fit_to(self, input_shape, mode="resize"):
        """Returns a copy whose images have `input_shape` (see `fit_images`)."""
        return dataclasses.replace(
            self,
            x_train=fit_images(self.x_train, input_shape, mode),
            x_val=fit_images(self.x_val, input_shape, mode),
            x_test=fit_images(self.x_test, input_shape, mode),
        )

    def __repr__(self):
        return (
            f"Dataset({self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, train={len(self.x_train)}, "
            f"val={len(self.x_val)}, test={len(self.x_test)})"
        )


def check_class_labels(name, y, num_classes, owner):
    """Raises unless `y` holds integers in [0, num_classes) (integral floats count)."""
    y = np.asarray(y)
    if y.size == 0:
        return
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"`{name}` of {owner} must hold class indices. Received: labels of dtype {y.dtype}")
    labels = y.reshape(-1).astype("float64")
    bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0) | (labels >= num_classes)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"`{name}` of {owner} must hold integers in [0, {num_classes}) (its num_classes). "
            f"Received: {int(bad.sum())} label(s) that are not, the first {name}[{first}]="
            f"{y.reshape(-1)[first].item()!r}"
        )


def fit_images(x, input_shape, mode="resize"):
    """Brings NHWC images to `input_shape` = (height, width, channels).

    Args:
        x: float array (N, H, W, C).
        input_shape: the target (height, width, channels).
        mode: "resize" (bilinear) or "pad" (zero-pad centred; the target
            must not be smaller than the images).

    Channels: 1 -> 3 repeats the grey channel; 3 -> 1 averages the channels.
    """
    if mode not in ("resize", "pad"):
        raise ValueError(f"`mode` must be 'resize' or 'pad'. Received: mode={mode!r}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape}"
        )
    height, width, channels = input_shape
    x = np.asarray(x, dtype="float32")
    if x.shape[-1] != channels:
        if x.shape[-1] == 1:
            x = np.repeat(x, channels, axis=-1)
        elif channels == 1:
            x = x.mean(axis=-1, keepdims=True)
        else:
            raise ValueError(
                f"Cannot map {x.shape[-1]} image channels to {channels}; only 1 <-> C is supported."
            )
    if x.shape[1:3] == (height, width):
        return x
    if mode == "pad":
        dh, dw = height - x.shape[1], width - x.shape[2]
        if dh < 0 or dw < 0:
            raise ValueError(
                f"Cannot pad images of size {x.shape[1:3]} to smaller size {(height, width)}; "
                "use mode='resize'."
            )
        pads = ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0))
        return np.pad(x, pads)
    from keras import ops

    return np.asarray(ops.convert_to_numpy(ops.image.resize(x, (height, width))), "float32")


def carve(x, y, fraction, seed):
    """Seeded split of `fraction` of (x, y) off the rest: (x_rest, y_rest, x_part, y_part).

    Stratified by label whenever every class has at least two examples and the
    carved part can hold one of each; a plain seeded split otherwise.
    """
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y, return_counts=True)
    part = int(np.ceil(fraction * len(y)))
    stratify = y if counts.min() >= 2 and len(counts) <= part <= len(y) - len(counts) else None
    x_rest, x_part, y_rest, y_part = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=stratify
    )
    return x_rest, y_rest, x_part, y_part


def split(x, y, *, test_fraction, validation_fraction, seed):
    """Seeded, stratified train/validation/test split of one labelled array."""
    x_rest, y_rest, x_test, y_test = carve(x, y, test_fraction, seed)
    x_train, y_train, x_val, y_val = carve(
        x_rest, y_rest, validation_fraction / (1.0 - test_fraction), seed
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


def split_parts(source, images, labels, num_classes, seed, test_fraction, validation_fraction):
    """A `Dataset` from a file's parts ("all", or "train" with optional "val" and "test").

    The splits a file lacks are carved as the named datasets' are: one array
    ("all") is split like `digits` (test, then validation, each a fraction
    of the whole); from "train", a missing test split takes `test_fraction`
    of it, then a missing validation split `validation_fraction` of the rest
    (as for tfds datasets). Seeded, stratified where every class can be.
    """
    if "all" in images:
        parts = split(
            images["all"], labels["all"], test_fraction=test_fraction,
            validation_fraction=validation_fraction, seed=seed,
        )
        return Dataset(source, *parts, num_classes=num_classes)
    x, y = images["train"], labels["train"]
    if "test" in images:
        x_test, y_test = images["test"], labels["test"]
    else:
        x, y, x_test, y_test = carve(x, y, test_fraction, seed)
    if "val" in images:
        x_val, y_val = images["val"], labels["val"]
    else:
        x, y, x_val, y_val = carve(x, y, validation_fraction, seed)
    return Dataset(source, x, y, x_val, y_val, x_test, y_test, num_classes=num_classes)
