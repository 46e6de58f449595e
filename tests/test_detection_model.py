"""The ReRAM detector, its loss and target maps, and DetectionHyperModel."""

import keras
import keras_tuner
import numpy as np
import pytest

from bayesft_keras.device.chip import device_layers
from bayesft_keras.architectures import dropout_layers
from bayesft_keras.detection import CenterNetLoss
from bayesft_keras.detection import DetectionHyperModel
from bayesft_keras.detection import DetectionNoiseInjectionHyperModel
from bayesft_keras.detection import build_detector
from bayesft_keras.detection import encode_targets
from bayesft_keras.device.layers import ReRAMConv2D
from bayesft_keras.device.noise import LogNormalDrift


def test_detector_structure():
    model = build_detector(10, (48, 48, 1), dropout={"stage2": 0.3, "head": 0.5}, noise=LogNormalDrift(0.4))
    assert model.output_shape == (None, 12, 12, 14)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert all(isinstance(l, ReRAMConv2D) for l in convs) and len(convs) == 7
    assert len(device_layers(model)) == 7
    rates = {site: [l.rate for l in dropout_layers(model, site)] for site in ("stage1", "stage2", "stage3", "head")}
    assert rates == {"stage1": [0.0], "stage2": [0.3], "stage3": [0.0], "head": [0.5]}
    assert all(dropout_layers(model, s)[0].channelwise for s in rates)
    # The heatmap starts at probability 0.1 (CenterNet's prior).
    out = build_detector(10)(np.zeros((1, 48, 48, 1), "float32"), training=False)
    np.testing.assert_allclose(keras.ops.sigmoid(out[..., :10]), 0.1, rtol=1e-5)
    assert build_detector(3, (32, 64, 3), width=0.5).output_shape == (None, 8, 16, 7)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_shape=(50, 48, 1)), "multiples of 4"),
    (dict(num_classes=0), "`num_classes` must be an int >= 1"),
    (dict(dropout={"conv9": 0.1}), "unknown site"),
    (dict(dropout=1.2), "Dropout rates must be numbers in \\[0, 1\\)"),
])
def test_detector_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_detector(**{"num_classes": 10, "input_shape": (48, 48, 1), **kwargs})


def test_target_maps():
    y = np.array([[[4, 8, 20, 24, 3, 0], [30, 30, 46, 46, 1, 1], [0, 0, 0, 0, -1, 0]]], "float32")
    maps = encode_targets(y, (48, 48, 1), num_classes=5)
    assert maps.shape == (1, 12, 12, 10)
    # One object (the crowd box is left out): centre (12, 16) px -> cell (row 4, col 3).
    assert maps[..., 9].sum() == 1 and maps[0, 4, 3, 9] == 1
    assert maps[0, 4, 3, 3] == 1.0 and maps[..., 3].max() == 1.0
    np.testing.assert_allclose(maps[0, 4, 3, 5:9], [0.0, 0.0, 4.0, 4.0])
    assert np.all(maps[..., [0, 1, 2, 4]] == 0)
    # A Gaussian around the centre, falling with distance.
    assert 0 < maps[0, 4, 4, 3] < 1 and maps[0, 4, 5, 3] < maps[0, 4, 4, 3]


def _loss_reference(maps, outputs, num_classes, offset_weight=1.0, size_weight=0.1):
    heat, boxes, mask = maps[..., :num_classes], maps[..., num_classes:-1], maps[..., -1:]
    p = 1 / (1 + np.exp(-outputs[..., :num_classes].astype("float64")))
    pos = heat == 1
    focal = np.where(pos, (1 - p) ** 2 * np.log(p), (1 - heat) ** 4 * p**2 * np.log(1 - p))
    objects = np.maximum(mask.sum(axis=(1, 2, 3)), 1)
    l1 = np.abs(outputs[..., num_classes:] - boxes) * mask
    per_image = (
        -focal.sum(axis=(1, 2, 3)) / objects
        + offset_weight * l1[..., :2].sum(axis=(1, 2, 3)) / objects
        + size_weight * l1[..., 2:].sum(axis=(1, 2, 3)) / objects
    )
    return per_image.mean()


def test_loss_matches_reference(rng):
    from bayesft_keras.detection import digits_detect

    ds = digits_detect(num_examples=30, seed=1)
    maps = encode_targets(ds.y_train[:8], ds.input_shape, 10)
    outputs = rng.normal(0, 2, size=maps.shape[:-1] + (14,)).astype("float32")
    loss = CenterNetLoss(size_weight=0.25)
    value = float(loss(maps, outputs))
    assert value == pytest.approx(_loss_reference(maps, outputs, 10, size_weight=0.25), rel=1e-4)
    # Outputs equal to the targets: only the focal loss's floor at logit +-9 is left.
    heat = np.clip(maps[..., :10], 1e-4, 1 - 1e-4)
    perfect = np.concatenate([np.log(heat / (1 - heat)), maps[..., 10:14]], -1).astype("float32")
    assert float(loss(maps, perfect)) < 0.02 * value
    restored = CenterNetLoss.from_config(loss.get_config())
    assert restored.size_weight == 0.25
    with pytest.raises(ValueError, match="target maps with 15 channels"):
        loss(maps[..., :-1], outputs)
    with pytest.raises(ValueError, match="`size_weight` must be a number >= 0"):
        CenterNetLoss(size_weight=-1)


def test_hypermodel_search_space_and_training():
    from bayesft_keras.detection import digits_detect

    ds = digits_detect(num_examples=120, seed=0)
    hypermodel = DetectionHyperModel(ds.input_shape, ds.num_classes, noise=LogNormalDrift(0.5),
                                     width=0.25, epochs=2, batch_size=32)
    assert hypermodel.hyperparameter_names() == [
        "dropout_stage1", "dropout_stage2", "dropout_stage3", "dropout_head"]
    hp = hypermodel.hyperparameters()
    assert all((p.min_value, p.max_value) == (0.2, 0.8) for p in hp.space)
    hp = keras_tuner.HyperParameters()
    hp.Fixed("dropout_stage1", 0.25)
    model = hypermodel.build(hp)
    assert dropout_layers(model, "stage1")[0].rate == 0.25
    assert dropout_layers(model, "head")[0].rate == pytest.approx(0.2)  # the range's low end
    before = [w.copy() for w in model.get_weights()]
    history = hypermodel.fit(hp, model, ds.x_train, ds.y_train,
                             validation_data=(ds.x_val, ds.y_val), verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["val_loss"]).all()
    assert history.history["loss"][1] < history.history["loss"][0]
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model._bayesft_total_steps == 2 * 3  # ceil(84 / 32) steps per epoch
    assert device_layers(model)[0].noise.sigma == 0.5


def test_noise_injection_hypermodel():
    hypermodel = DetectionNoiseInjectionHyperModel(
        (32, 32, 1), 3, noise=LogNormalDrift(0.8), sigma_range=(0.1, 0.6), width=0.25)
    assert hypermodel.hyperparameter_names()[-1] == "noise_injection_sigma"
    model = hypermodel.build(hypermodel.hyperparameters())
    assert all(layer.train_noise for layer in device_layers(model))
    with pytest.raises(ValueError, match="needs a noise model with a `sigma`"):
        DetectionNoiseInjectionHyperModel((32, 32, 1), 3)


def test_hypermodel_bad_arguments():
    with pytest.raises(ValueError, match="`rate_range`"):
        DetectionHyperModel(rate_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="multiples of 4"):
        DetectionHyperModel(input_shape=(30, 30, 1))
