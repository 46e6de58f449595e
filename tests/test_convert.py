import keras
import numpy as np
import pytest
from keras import ops

import bayesft_keras as bk


def _np(x):
    return ops.convert_to_numpy(x)


def _functional_with_nested_model():
    inner = keras.Sequential(
        [keras.Input((4, 4, 8)), keras.layers.Conv2D(8, 3, padding="same", activation="relu")],
        name="inner",
    )
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = inner(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    seq = keras.layers.Reshape((8, 1))(x)
    seq = keras.layers.Conv1D(2, 3)(seq)
    x = keras.layers.Concatenate()([x, keras.layers.Flatten()(seq)])
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _snapshot(model):
    return [type(layer) for layer in model._flatten_layers()], [w.copy() for w in model.get_weights()]


def test_convert_replaces_every_supported_layer_and_copies_weights():
    model = _functional_with_nested_model()
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    types, weights = _snapshot(model)
    converted = bk.convert(model, noise=bk.LogNormalDrift(0.5), bits=None)

    device = bk.device_layers(converted)
    # Conv2D, Conv2D (nested), DepthwiseConv2D, Conv1D, Dense
    assert sorted(type(layer).__name__ for layer in device) == [
        "ReRAMConv1D", "ReRAMConv2D", "ReRAMConv2D", "ReRAMDense", "ReRAMDepthwiseConv2D"
    ]
    assert all(layer.noise == bk.LogNormalDrift(0.5) for layer in device)
    with bk.noise_off(converted):
        np.testing.assert_array_equal(_np(converted(x)), _np(model(x)))
    assert np.abs(_np(converted(x)) - _np(model(x))).max() > 1e-4
    # The caller's model is untouched: same classes, same weights.
    after_types, after_weights = _snapshot(model)
    assert after_types == types
    for a, b in zip(after_weights, weights):
        np.testing.assert_array_equal(a, b)


def test_ideal_conversion_is_exact_and_to_keras_reverses():
    model = _functional_with_nested_model()
    x = np.random.default_rng(1).random((2, 8, 8, 3)).astype("float32")
    converted = bk.convert(model)
    np.testing.assert_array_equal(_np(converted(x)), _np(model(x)))
    back = bk.to_keras(bk.convert(model, noise=bk.LogNormalDrift(1.0), bits=4))
    assert not any(isinstance(layer, bk.layers.DeviceLayerMixin) for layer in back._flatten_layers())
    np.testing.assert_array_equal(_np(back(x)), _np(model(x)))


def test_reconverting_changes_device_settings():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    first = bk.convert(model, noise=bk.LogNormalDrift(0.2), bits=8)
    second = bk.convert(first, noise=bk.StuckAtFaults(0.1), bits=4)
    layer = second.layers[0]
    assert layer.noise == bk.StuckAtFaults(0.1) and layer.bits == 4
    np.testing.assert_array_equal(layer.kernel.numpy(), model.layers[0].kernel.numpy())
    assert first.layers[0].noise == bk.LogNormalDrift(0.2)


@pytest.mark.parametrize(
    "application, shape",
    [(keras.applications.MobileNetV2, (32, 32, 3)), (keras.applications.ResNet50, (32, 32, 3))],
    ids=["MobileNetV2", "ResNet50"],
)
def test_keras_applications_convert_with_identical_clean_outputs(application, shape):
    model = application(weights=None, input_shape=shape, classes=10)
    x = np.random.default_rng(2).random((2,) + shape).astype("float32")
    converted = bk.convert(model, noise=bk.LogNormalDrift(0.5), bits=None)
    n_replaced = len(bk.device_layers(converted))
    n_expected = sum(
        type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
        for layer in model._flatten_layers()
    )
    assert n_replaced == n_expected > 20
    with bk.noise_off(converted):
        np.testing.assert_allclose(_np(converted(x)), _np(model(x)), rtol=0, atol=1e-6)


def test_convert_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="keras.Model"):
        bk.convert(keras.layers.Dense(3))

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    custom = Custom()
    custom(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="Sequential and Functional"):
        bk.convert(custom)
    with pytest.raises(ValueError, match="bits"):
        bk.convert(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), bits=99)


def test_walk_layers_keeps_keras_own_order_on_public_api():
    # The order fixes which per-layer seed each ReRAM layer of a chip gets.
    from bayesft_keras.device.walk import walk_layers

    model = bk.convert(_functional_with_nested_model(), noise=bk.LogNormalDrift(0.5))
    hidden = (keras.layers.InputLayer, bk.device.sampling.DeviceState)
    private = [l for l in model._flatten_layers(include_self=True) if not isinstance(l, hidden)]
    public = [l for l in walk_layers(model, include_self=True) if not isinstance(l, keras.layers.InputLayer)]
    assert [id(l) for l in public] == [id(l) for l in private]
    assert walk_layers(keras.layers.Dense(2)) == []
