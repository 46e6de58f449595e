import keras
import numpy as np
import pytest
from keras import ops

import bayesft_keras as bk

# (ReRAM class, Keras parent, constructor args, input shape)
LAYERS = [
    (bk.ReRAMDense, keras.layers.Dense, dict(units=6, activation="relu"), (5, 7)),
    (bk.ReRAMConv1D, keras.layers.Conv1D, dict(filters=4, kernel_size=3, padding="causal"), (3, 9, 2)),
    (bk.ReRAMConv2D, keras.layers.Conv2D, dict(filters=4, kernel_size=3, strides=2), (3, 8, 8, 2)),
    (
        bk.ReRAMDepthwiseConv2D,
        keras.layers.DepthwiseConv2D,
        dict(kernel_size=3, depth_multiplier=2, padding="same"),
        (3, 6, 6, 3),
    ),
]
IDS = [c[0].__name__ for c in LAYERS]


def _pair(device_cls, keras_cls, args, shape, **device):
    x = np.random.default_rng(1).standard_normal(shape).astype("float32")
    plain = keras_cls(**args)
    plain(x)
    # A non-zero bias, so that bias drift shows.
    plain.weights[1].assign(np.random.default_rng(2).uniform(0.1, 1.0, plain.weights[1].shape))
    layer = device_cls(**args, **device)
    layer(x)
    layer.kernel.assign(plain.kernel)
    layer.bias.assign(plain.bias)
    return plain, layer, x


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_ideal_device_equals_the_keras_layer_exactly(spec):
    plain, layer, x = _pair(*spec)
    np.testing.assert_array_equal(_np(layer(x)), _np(plain(x)))


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_noise_off_equals_the_keras_layer_exactly(spec):
    plain, layer, x = _pair(*spec, noise=bk.LogNormalDrift(1.0))
    assert np.abs(_np(layer(x)) - _np(plain(x))).max() > 1e-3  # noise is on by default
    with bk.noise_off(layer):
        np.testing.assert_array_equal(_np(layer(x)), _np(plain(x)))
    assert np.abs(_np(layer(x)) - _np(plain(x))).max() > 1e-3  # and back on after


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_a_chip_is_fixed_across_batches_until_resampled(spec):
    _, layer, x = _pair(*spec, noise=bk.LogNormalDrift(0.5))
    bk.resample(layer, 11)
    full = _np(layer(x))
    # Sample by sample: the same realization for every batch.
    parts = np.concatenate([_np(layer(x[i : i + 1])) for i in range(len(x))])
    np.testing.assert_allclose(parts, full, rtol=1e-5, atol=1e-6)
    bk.resample(layer, 12)
    other = _np(layer(x))
    assert np.abs(other - full).max() > 1e-3
    bk.resample(layer, 11)
    np.testing.assert_array_equal(_np(layer(x)), full)  # same seed, same chip


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_chip_context_restores_the_previous_chip(spec):
    _, layer, x = _pair(*spec, noise=bk.LogNormalDrift(0.5))
    bk.resample(layer, 1)
    before = _np(layer(x))
    with bk.chip(layer, 2):
        assert np.abs(_np(layer(x)) - before).max() > 1e-3
    np.testing.assert_array_equal(_np(layer(x)), before)


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_training_sees_quantized_weights_without_noise(spec):
    device_cls, keras_cls, args, shape = spec
    plain, layer, x = _pair(*spec, noise=bk.LogNormalDrift(1.0), bits=3)
    quantized = device_cls(**args, bits=3)
    quantized(x)
    quantized.set_weights(plain.get_weights())
    np.testing.assert_array_equal(_np(layer(x, training=True)), _np(quantized(x)))
    # Quantization really changes the output.
    assert np.abs(_np(quantized(x)) - _np(plain(x))).max() > 1e-4


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_stored_weights_are_never_modified(spec):
    _, layer, x = _pair(*spec, noise=bk.LogNormalDrift(1.0), bits=3)
    before = [w.copy() for w in layer.get_weights()[:2]]
    for seed in range(3):
        bk.resample(layer, seed)
        layer(x)
        layer(x, training=True)
    for b, a in zip(before, layer.get_weights()[:2]):
        np.testing.assert_array_equal(a, b)


def test_dense_inference_drift_follows_the_lognormal_model():
    # With an identity input, the outputs are the drifted kernel (+ drifted bias 0).
    n_in, n_out, sigma = 200, 200, 0.7
    layer = bk.ReRAMDense(n_out, use_bias=False, noise=bk.LogNormalDrift(sigma))
    eye = np.eye(n_in, dtype="float32")
    layer(eye)
    kernel = np.random.default_rng(3).uniform(0.5, 1.0, (n_in, n_out)).astype("float32")
    layer.kernel.assign(kernel)
    bk.resample(layer, 5)
    theta = np.log(_np(layer(eye)) / kernel)
    n = theta.size
    assert abs(theta.mean()) < 5 * sigma / np.sqrt(n)
    assert abs(theta.std() - sigma) < 5 * sigma / np.sqrt(2 * n)


def test_noisy_bias_false_keeps_the_bias_clean():
    layer = bk.ReRAMDense(3, noise=bk.LogNormalDrift(1.0), noisy_bias=False)
    zeros = np.zeros((1, 4), "float32")
    layer(zeros)
    layer.bias.assign([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(_np(layer(zeros))[0], [0.5, -1.0, 2.0])
    drifting = bk.ReRAMDense(3, noise=bk.LogNormalDrift(1.0))
    drifting(zeros)
    drifting.bias.assign([0.5, -1.0, 2.0])
    assert np.abs(_np(drifting(zeros))[0] - [0.5, -1.0, 2.0]).min() > 1e-3


def test_train_noise_draws_fresh_noise_every_training_step():
    layer = bk.ReRAMDense(4, noise=bk.LogNormalDrift(0.5), train_noise=True, seed=3)
    x = np.ones((2, 5), "float32")
    a, b = _np(layer(x, training=True)), _np(layer(x, training=True))
    assert np.abs(a - b).max() > 1e-3
    clean = bk.ReRAMDense(4, noise=bk.LogNormalDrift(0.5))
    clean(x)
    clean.set_weights(layer.get_weights())
    assert np.abs(_np(clean(x, training=True)) - a).max() > 1e-3


def test_set_noise_params_sweeps_without_rebuilding():
    layer = bk.ReRAMDense(50, use_bias=False, noise=bk.LogNormalDrift(0.0))
    x = np.eye(50, dtype="float32")
    layer(x)
    forward = layer.__call__
    clean = _np(forward(x))
    bk.set_noise_params(layer, sigma=0.8)
    assert layer.noise == bk.LogNormalDrift(0.8)
    theta = np.log(_np(forward(x)) / clean)
    assert abs(theta.std() - 0.8) < 5 * 0.8 / np.sqrt(2 * theta.size)
    with pytest.raises(ValueError, match="structure"):
        bk.set_noise(layer, bk.StuckAtFaults(0.1))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.function tracing")
def test_compiled_function_sees_chip_and_noise_changes_without_retracing():
    import tensorflow as tf

    model = keras.Sequential([keras.Input((8,)), bk.ReRAMDense(4, noise=bk.LogNormalDrift(0.5))])
    x = np.ones((2, 8), "float32")
    traces = []

    @tf.function
    def forward(x):
        traces.append(1)
        return model(x, training=False)

    bk.resample(model, 1)
    a = forward(x).numpy()
    bk.resample(model, 2)
    b = forward(x).numpy()
    with bk.noise_off(model):
        c = forward(x).numpy()
    assert len(traces) == 1
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_array_equal(c, model.layers[0].activation(x @ model.layers[0].kernel.numpy()
                                                                   + model.layers[0].bias.numpy()))


@pytest.mark.parametrize("spec", LAYERS, ids=IDS)
def test_config_round_trip(spec):
    device_cls, _, args, shape = spec
    layer = device_cls(
        **args,
        noise=bk.Compose([bk.LogNormalDrift(0.3), bk.StuckAtFaults(0.01)]),
        bits=4,
        per_channel=False,
        input_bits=8,
        output_bits=6,
        noisy_bias=False,
    )
    config = layer.get_config()
    clone = device_cls.from_config(config)
    assert clone.get_config() == config
    assert clone.noise == layer.noise and clone.bits == 4 and clone.input_bits == 8


def test_save_and_load_round_trip_keeps_the_chip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            bk.ReRAMConv2D(4, 3, activation="relu", noise=bk.LogNormalDrift(0.5), bits=4),
            bk.ReRAMDepthwiseConv2D(3, noise=bk.LogNormalDrift(0.5), bits=4),
            keras.layers.Flatten(),
            bk.ReRAMDense(3, noise=bk.LogNormalDrift(0.5), bits=4, output_bits=8),
        ]
    )
    bk.resample(model, 9)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # no custom_objects
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    np.testing.assert_array_equal(_np(loaded(x)), _np(model(x)))
    with bk.noise_off(model), bk.noise_off(loaded):
        np.testing.assert_array_equal(_np(loaded(x)), _np(model(x)))


def test_quantization_aware_training_learns_digits():
    from bayesft_keras import data

    ds = data.load("digits")
    model = keras.Sequential(
        [
            keras.Input(ds.input_shape),
            keras.layers.Flatten(),
            bk.ReRAMDense(64, activation="relu", bits=3),
            bk.ReRAMDense(10, activation="softmax", bits=3),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, epochs=15, batch_size=64, verbose=0)
    # Every weight the model computes with lies on the 3-bit grid.
    kernel = _np(model.layers[1]._device_kernel(model.layers[1].kernel, None))
    steps = kernel / (np.abs(kernel).max(axis=0) / 3)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    _, accuracy = model.evaluate(ds.x_test, ds.y_test, verbose=0)
    assert accuracy > 0.9  # 3-bit weights still learn 8x8 digits


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(bits=1), "bits"),
        (dict(input_bits=40), "input_bits"),
        (dict(noise=0.5), "noise"),
        (dict(noisy_bias="yes"), "noisy_bias"),
        (dict(train_noise=True), "train_noise"),
        (dict(seed="a"), "seed"),
    ],
)
def test_bad_device_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bk.ReRAMDense(3, **kwargs)


def test_resample_needs_noisy_layers_and_a_valid_seed():
    model = keras.Sequential([keras.Input((3,)), bk.ReRAMDense(2)])
    with pytest.raises(ValueError, match="no built ReRAM layer"):
        bk.resample(model, 0)
    noisy = keras.Sequential([keras.Input((3,)), bk.ReRAMDense(2, noise=bk.LogNormalDrift(0.1))])
    with pytest.raises(ValueError, match="seed=-1"):
        bk.resample(noisy, -1)
