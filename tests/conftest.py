import os

# Quiet TensorFlow's C++ logging in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN CPU kernels: several times faster convolutions on this CPU (TF leaves them off here).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- shared data and models: trained once per test process -----------------------------------


@pytest.fixture(scope="session")
def digits():
    from bayesft_keras.data import load

    return load("digits", seed=0)


@pytest.fixture(scope="session")
def trained(digits):
    """A small CNN trained on the digits (about 90 % test accuracy), softmax output."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="digits_cnn",
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=15, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def files(tmp_path_factory, digits):
    """A folder: a trained plain Keras model, its 4-bit ReRAM version, and non-model files."""
    import bayesft_keras as bk

    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="cnn",
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=10, verbose=0)
    model.save(folder / "plain.keras")
    bk.convert(model, noise=bk.LogNormalDrift(0.5), bits=4).save(folder / "device.keras")
    flat = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10)])
    flat.save(folder / "flat.keras")
    (folder / "text.keras").write_text("not a model")
    (folder / "notes.txt").write_text("not a model")
    return folder
