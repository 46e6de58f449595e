"""The detector learns digits-detect on CPU, and its mAP falls under drift.

One training run (about a minute on 2 CPU cores) serves both tests.
"""

import keras
import keras_tuner
import numpy as np
import pytest

from bayesft_keras.device.chip import noise_off
from bayesft_keras.detection import DetectionHyperModel
from bayesft_keras.detection import DetectionMAP
from bayesft_keras.detection import digits_detect
from bayesft_keras.evaluation import evaluate_drift
from bayesft_keras.device.noise import LogNormalDrift

# Measured with this recipe and seed: test mAP@0.5 0.89 (COCO mAP@[.5:.95] 0.61);
# under drift (6 chips) 0.74 at sigma 0.15 and 0.22 at sigma 0.3.
MEASURED_MAP50 = 0.89
MARGIN = 0.1

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    ds = digits_detect(num_examples=2000, seed=0)
    hypermodel = DetectionHyperModel(
        ds.input_shape, ds.num_classes, noise=LogNormalDrift(0.3), width=0.5, epochs=16
    )
    hp = keras_tuner.HyperParameters()
    for name in hypermodel.hyperparameter_names():
        hp.Fixed(name, 0.0)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, ds.x_train, ds.y_train, verbose=0)
    return model, ds


def test_detector_learns_digits_detect(trained):
    model, ds = trained
    with noise_off(model):
        outputs = model.predict(ds.x_test, verbose=0)
    map50 = DetectionMAP("map50")(ds.y_test, outputs)
    assert map50 > MEASURED_MAP50 - MARGIN
    assert 0.3 < DetectionMAP("map")(ds.y_test, outputs) < map50


def test_map_falls_with_drift(trained):
    model, ds = trained
    weights = [w.copy() for w in model.get_weights()]
    metric = DetectionMAP("map50")
    chips = 6
    report = evaluate_drift(model, ds, sigmas=[0.0, 0.15, 0.3], chips=chips, metric=metric,
                            seed=0, progress=False)
    assert report.metric == "map50" and report.chip_metrics.shape == (3, chips)
    # Noise off in the evaluator is the model's own clean mAP; sigma 0 is clean on every chip.
    with noise_off(model):
        clean = metric(ds.y_test, model.predict(ds.x_test, verbose=0))
    assert report.clean == pytest.approx(clean, abs=1e-6)
    np.testing.assert_allclose(report.chip_metrics[0], clean, atol=1e-6)
    # The mean at the largest sigma lies below the clean mAP by more than 3
    # Monte Carlo standard errors, and the curve falls.
    means, errors = report.mean(), report.std() / np.sqrt(chips)
    assert means[-1] < clean - 3 * max(errors[-1], 1e-3)
    assert means[2] < means[1] <= means[0] + 1e-9
    # The caller's model is untouched.
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
