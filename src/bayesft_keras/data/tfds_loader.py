"""TensorFlow Datasets image-classification datasets as in-memory `Dataset`s.

Nothing is downloaded here: a dataset must already be prepared in the tfds data
directory (`tfds build NAME --data_dir DIR` on a machine with internet), so
an offline run fails at once with instructions instead of timing out.
"""

import math
import os

import numpy as np

from bayesft_keras.data.dataset import Dataset
from bayesft_keras.data.dataset import carve

# The tfds datasets we document and test; any other tfds dataset with an image
# and a class label works too.
DOCUMENTED = ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped")
_BATCH = 2048


class DatasetNotPreparedError(FileNotFoundError):
    """A tfds dataset is not in the data directory (and nothing is downloaded)."""


def import_tfds():
    """`tensorflow_datasets`, imported when first used (it is a TensorFlow-only edge)."""
    import tensorflow_datasets as tfds  # TF-only edge: imported when used

    return tfds


def data_dir_of(data_dir):
    """The tfds data directory used: `data_dir`, $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    if data_dir:
        return os.fspath(data_dir)
    return os.environ.get("TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets"))


def builder(name, data_dir=None, valid_names=None):
    """The tfds builder of an image-classification dataset `name`.

    Raises:
        ValueError: unknown name (listing `valid_names`), or a dataset that is
            not image classification.
    """
    tfds = import_tfds()
    try:
        b = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        valid = ", ".join(valid_names or DOCUMENTED)
        raise ValueError(
            f"Unknown dataset {name!r}. Valid names: {valid}, or any tfds "
            "image-classification dataset (see `tfds.list_builders()`), or a path: a .npz file "
            "or a folder of class subfolders of images."
        ) from None
    check_image_classification(b, name)
    return b


def check_image_classification(b, name):
    """Raises `ValueError` unless the tfds builder `b` gives (image, class label) pairs."""
    tfds = import_tfds()
    image_key, label_key = b.info.supervised_keys or (None, None)
    features = b.info.features
    if (
        image_key not in features
        or label_key not in features
        or not isinstance(features[image_key], tfds.features.Image)
        or not isinstance(features[label_key], tfds.features.ClassLabel)
    ):
        raise ValueError(
            f"Dataset {name!r} is not an image-classification dataset: it needs an "
            "image and a class label as its supervised keys."
        )


def _not_prepared(name, data_dir):
    where = data_dir_of(data_dir)
    return DatasetNotPreparedError(
        f"Dataset {name!r} is not prepared in {where}: run `tfds build {name} "
        f"--data_dir {where}` on a machine with internet (or pass --data-dir to where "
        "it is prepared), or use --dataset digits."
    )


def _splits(b):
    """(train, test) split names; test None when it must be carved from train."""
    names = set(b.info.splits)  # empty when the metadata is not known yet
    if names and "train" not in names:
        raise ValueError(f"Dataset {b.name!r} has no 'train' split. Its splits: {sorted(names)}")
    if not names or "test" in names:
        return "train", "test"
    # E.g. imagenette: its 'validation' split is the held-out evaluation set.
    return "train", ("validation" if "validation" in names else None)


def _read(b, split, limit, image_size, name, data_dir):
    """One split as float32 NHWC images in [0, 1] and int32 labels."""
    import tensorflow as tf

    try:
        ds = b.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    except AssertionError as e:  # tfds's "could not find data" error
        raise _not_prepared(name, data_dir) from e
    if limit is not None:
        ds = ds.take(limit)
    image_dtype = b.info.features[b.info.supervised_keys[0]].dtype
    scale = 255.0 if image_dtype == tf.uint8 else 1.0

    def convert(image, label):
        image = tf.cast(image, tf.float32) / scale
        if image_size is not None:
            image = tf.image.resize(image, image_size)
        return image, tf.cast(label, tf.int32)

    ds = ds.map(convert).batch(_BATCH)
    xs, ys = [], []
    for x, y in ds.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError(f"Split {split!r} of dataset {name!r} is empty.")
    return np.concatenate(xs), np.concatenate(ys)


def load(
    name,
    *,
    data_dir=None,
    seed=0,
    validation_fraction=0.1,
    test_fraction=0.2,
    max_examples=None,
    input_shape=None,
    valid_names=None,
):
    """Loads a prepared tfds image-classification dataset into memory.

    The dataset's own train and test splits are used (its 'validation' split
    as test when it has no 'test'; a seeded `test_fraction` of train when
    it has neither); the validation split is a seeded, stratified
    `validation_fraction` of train.

    Args:
        name: a tfds dataset name (with an optional config/version, e.g.
            "emnist/letters").
        data_dir: the tfds data directory (default: $TFDS_DATA_DIR or
            ~/tensorflow_datasets).
        seed: seed of the carved splits.
        validation_fraction: fraction of train held out for validation.
        test_fraction: fraction of train held out as test, only for datasets
            without a test split.
        max_examples: read at most about this many training examples (enough
            that this many remain after carving); the test split is read whole.
        input_shape: (height, width, channels); images of datasets whose
            image size varies are resized to it here (required for those).
        valid_names: the names listed when `name` is unknown.

    Raises:
        DatasetNotPreparedError: the dataset is not in `data_dir`.
        ValueError: unknown name, not image classification, or images of
            varying size without `input_shape`.
    """
    b = builder(name, data_dir, valid_names)
    return load_builder(
        b, name, data_dir=data_dir, seed=seed, validation_fraction=validation_fraction,
        test_fraction=test_fraction, max_examples=max_examples, input_shape=input_shape,
    )


def load_builder(
    b, name, *, data_dir=None, seed=0, validation_fraction=0.1, test_fraction=0.2, max_examples=None,
    input_shape=None,
):
    """`load` of a tfds builder `b` (see `load`); `name` names the dataset in messages and the `Dataset`."""
    image_shape = b.info.features[b.info.supervised_keys[0]].shape
    image_size = None
    if None in image_shape[:2]:
        if input_shape is None:
            raise ValueError(
                f"The images of {name!r} vary in size; pass `input_shape` to resize them. "
                "Received: input_shape=None"
            )
        image_size = tuple(int(d) for d in input_shape[:2])
    train_split, test_split = _splits(b)
    held_out = validation_fraction + (test_fraction if test_split is None else 0.0)
    limit = None if max_examples is None else math.ceil(max_examples / (1.0 - held_out))
    x, y = _read(b, train_split, limit, image_size, name, data_dir)
    if test_split is None:
        x, y, x_test, y_test = carve(x, y, test_fraction, seed)
    else:
        x_test, y_test = _read(b, test_split, None, image_size, name, data_dir)
    x_train, y_train, x_val, y_val = carve(x, y, validation_fraction, seed)
    num_classes = b.info.features[b.info.supervised_keys[1]].num_classes
    return Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test, num_classes=num_classes)


INFO_FILE = "dataset_info.json"


def prepared_folder(path):
    """The folder of one prepared tfds dataset version at or below `path`, or None if there is none.

    `path` is the version folder itself (holding `dataset_info.json`, as
    `tfds build` writes it: DATA_DIR/NAME/VERSION), or the NAME (or
    NAME/CONFIG) folder above it: the newest version there is taken.

    Raises:
        ValueError: several datasets (configs) below `path`, or TFRecord files
            without the `dataset_info.json` that says how to read them.
    """
    if os.path.isfile(os.path.join(path, INFO_FILE)):
        return path
    found = []
    for root, dirs, names in os.walk(path):
        depth = os.path.relpath(root, path).count(os.sep) + (root != path)
        if INFO_FILE in names:
            found.append(root)
        if depth >= 2:
            dirs[:] = []
    if not found:
        if any(".tfrecord" in name for name in os.listdir(path)):
            raise ValueError(
                f"`dataset` folder {path!r} holds TFRecord files but no {INFO_FILE}: give the folder "
                f"`tfds build` prepared (DATA_DIR/NAME/VERSION). Received: dataset={path!r}"
            )
        return None
    parents = {os.path.dirname(f) for f in found}
    if len(parents) > 1:
        raise ValueError(
            f"`dataset` folder {path!r} holds several tfds datasets; give one of "
            f"{sorted(parents)}. Received: dataset={path!r}"
        )
    return max(found, key=lambda f: _version_key(os.path.basename(f)))


def _version_key(name):
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return ()


def load_folder(folder, source, *, seed, test_fraction, validation_fraction, input_shape=None):
    """The `Dataset` of a prepared tfds folder (`prepared_folder`), named `source`."""
    tfds = import_tfds()
    b = tfds.builder_from_directory(folder)
    check_image_classification(b, source)
    return load_builder(
        b, source, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
        input_shape=input_shape,
    )
