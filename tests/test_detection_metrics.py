"""mAP by pycocotools on known cases, and decoding of detector outputs."""

import numpy as np
import pytest

from bayesft_keras.detection import DetectionMAP
from bayesft_keras.detection import coco_evaluate
from bayesft_keras.detection import decode
from bayesft_keras.detection import encode_targets
from bayesft_keras.detection import mean_average_precision
from bayesft_keras.detection.metrics import COCO_IOU_THRESHOLDS

PAD_BOX = [0, 0, 0, 0, -1, 0]
PAD_DET = [0, 0, 0, 0, 0, -1]


def boxes(*rows, pad_to=None, pad=PAD_BOX):
    rows = [list(r) for r in rows]
    rows += [pad] * ((pad_to or len(rows)) - len(rows))
    return np.array([rows], dtype="float32")


def detections(*rows, pad_to=None):
    return boxes(*rows, pad_to=pad_to, pad=PAD_DET)


def test_perfect_detections_score_one():
    y = boxes([0, 0, 10, 10, 0, 0], [20, 20, 30, 34, 1, 0], pad_to=3)
    d = detections([0, 0, 10, 10, 0.9, 0], [20, 20, 30, 34, 0.8, 1], pad_to=5)
    stats = coco_evaluate(y, d)
    assert stats["map50"] == pytest.approx(1.0)
    assert stats["map"] == pytest.approx(1.0)
    assert mean_average_precision(y, d) == pytest.approx(1.0)


def test_half_recall_is_51_of_101_recall_points():
    # COCO interpolates precision at 101 recall points 0, 0.01, ..., 1: one of
    # two objects found with precision 1 covers the 51 points up to 0.5.
    y = boxes([0, 0, 10, 10, 0, 0], [20, 20, 30, 30, 0, 0])
    d = detections([0, 0, 10, 10, 0.9, 0])
    assert coco_evaluate(y, d)["map50"] == pytest.approx(51 / 101)


def test_false_positive_ranked_first_halves_precision():
    y = boxes([0, 0, 10, 10, 0, 0])
    d = detections([40, 40, 50, 50, 0.9, 0], [0, 0, 10, 10, 0.5, 0])
    assert coco_evaluate(y, d)["map50"] == pytest.approx(0.5)
    # Ranked after the true positive, a false positive costs nothing.
    d = detections([40, 40, 50, 50, 0.4, 0], [0, 0, 10, 10, 0.5, 0])
    assert coco_evaluate(y, d)["map50"] == pytest.approx(1.0)


def test_wrong_class_scores_zero_and_classes_are_averaged():
    y = boxes([0, 0, 10, 10, 0, 0], [20, 20, 30, 30, 1, 0])
    assert coco_evaluate(y, detections([0, 0, 10, 10, 0.9, 1]))["map50"] == 0.0
    # Class 0 perfect, class 1 missed: the mean over the two classes.
    assert coco_evaluate(y, detections([0, 0, 10, 10, 0.9, 0]))["map50"] == pytest.approx(0.5)


def test_iou_thresholds():
    # IoU 0.62 passes the thresholds 0.5, 0.55 and 0.6 of COCO's ten.
    y = boxes([0, 0, 10, 10, 0, 0])
    d = detections([0, 0, 10, 6.2, 0.9, 0])
    stats = coco_evaluate(y, d)
    assert stats["map50"] == pytest.approx(1.0)
    assert stats["map75"] == 0.0
    assert stats["map"] == pytest.approx(0.3)
    assert mean_average_precision(y, d, COCO_IOU_THRESHOLDS) == pytest.approx(0.3)
    # IoU 0.45 fails 0.5.
    assert coco_evaluate(y, detections([0, 0, 10, 4.5, 0.9, 0]))["map50"] == 0.0


def test_crowd_boxes_are_ignored():
    # A detection on a crowd region is neither a hit nor a false positive.
    y = boxes([0, 0, 10, 10, 0, 0], [30, 30, 40, 40, 0, 1])
    d = detections([30, 30, 40, 40, 0.95, 0], [0, 0, 10, 10, 0.9, 0])
    assert coco_evaluate(y, d)["map50"] == pytest.approx(1.0)
    # Nor is missing it a miss; as a plain box (5 columns: no crowd flag) it is.
    d = detections([0, 0, 10, 10, 0.9, 0])
    assert coco_evaluate(y, d)["map50"] == pytest.approx(1.0)
    assert coco_evaluate(y[..., :5], d)["map50"] == pytest.approx(51 / 101)


def test_fast_path_equals_pycocotools_summary(rng):
    # Random scenes and noisy detections: the restricted evaluation gives
    # exactly the numbers of pycocotools' full summary.
    n = 40
    y = np.zeros((n, 3, 6), "float32")
    y[..., 4] = -1
    d = np.zeros((n, 10, 6), "float32")
    d[..., 5] = -1
    for i in range(n):
        for k in range(rng.integers(1, 4)):
            x0, y0 = rng.uniform(0, 40, 2)
            w, h = rng.uniform(8, 20, 2)
            y[i, k] = [x0, y0, x0 + w, y0 + h, rng.integers(3), 0]
            jitter = rng.normal(0, 2.0, 4)
            d[i, k] = [*(y[i, k, :4] + jitter), rng.uniform(0.3, 1), y[i, k, 4]]
        for k in range(3, 10):
            x0, y0 = rng.uniform(0, 40, 2)
            d[i, k] = [x0, y0, x0 + 12, y0 + 12, rng.uniform(0, 0.6), rng.integers(3)]
    stats = coco_evaluate(y, d)
    assert 0.2 < stats["map"] < stats["map50"] < 1.0
    assert mean_average_precision(y, d) == pytest.approx(stats["map50"], abs=1e-12)
    assert mean_average_precision(y, d, COCO_IOU_THRESHOLDS) == pytest.approx(stats["map"], abs=1e-12)
    assert mean_average_precision(y, d, (0.75,)) == pytest.approx(stats["map75"], abs=1e-12)


def test_no_detection_scores_zero():
    y = boxes([0, 0, 10, 10, 0, 0])
    d = detections(pad_to=4)
    assert coco_evaluate(y, d)["map"] == 0.0
    assert mean_average_precision(y, d) == 0.0


def test_bad_inputs_name_the_argument():
    y = boxes([0, 0, 10, 10, 0, 0])
    with pytest.raises(ValueError, match="`y_true` must be padded boxes"):
        coco_evaluate(y[0], detections([0, 0, 10, 10, 0.9, 0]))
    with pytest.raises(ValueError, match="`detections` must have shape"):
        coco_evaluate(y, np.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match="no \\(non-crowd\\) box"):
        coco_evaluate(boxes(PAD_BOX), detections([0, 0, 10, 10, 0.9, 0]))
    with pytest.raises(ValueError, match="`iou_thresholds`"):
        mean_average_precision(y, detections([0, 0, 10, 10, 0.9, 0]), iou_thresholds=(1.5,))
    with pytest.raises(ValueError, match="`kind` must be one of"):
        DetectionMAP("ap")


def _outputs_from_targets(maps, num_classes):
    """Detector outputs that reproduce target maps exactly: heat logits, then dx, dy, w, h."""
    heat = np.clip(maps[..., :num_classes], 1e-4, 1 - 1e-4)
    logits = np.log(heat / (1 - heat))
    return np.concatenate([logits, maps[..., num_classes : num_classes + 4]], axis=-1)


def test_decoding_the_targets_recovers_the_boxes():
    # Boxes -> target maps -> outputs equal to the targets -> decode: the
    # decoder inverts the encoder, so the metric is 1.
    from bayesft_keras.detection import digits_detect

    ds = digits_detect(num_examples=60, seed=3)
    maps = encode_targets(ds.y_test, ds.input_shape, 10)
    outputs = _outputs_from_targets(maps, 10)
    found = decode(outputs)
    real = ds.y_test[..., 4] >= 0
    assert (found[..., 5] >= 0).sum() == real.sum()  # the Gaussian tails are no peaks
    assert DetectionMAP("map")(ds.y_test, outputs) == pytest.approx(1.0)
    first = found[0][found[0, :, 5] >= 0]
    expected = ds.y_test[0][real[0]]
    order = np.lexsort((first[:, 1], first[:, 0]))
    expected_order = np.lexsort((expected[:, 1], expected[:, 0]))
    np.testing.assert_allclose(first[order, :4], expected[expected_order, :4], atol=1e-4)
    np.testing.assert_array_equal(first[order, 5], expected[expected_order, 4])


def test_decode_ignores_non_finite_outputs():
    outputs = np.full((2, 6, 6, 3 + 4), -10.0, "float32")
    outputs[..., 3:] = [0.5, 0.5, 2.0, 2.0]
    outputs[0, 2, 2, 1] = 5.0  # a confident peak, finite box
    outputs[1, 3, 3, 0] = np.nan  # a drifted chip's NaN
    outputs[1, 1, 1, 2] = 5.0
    outputs[1, 1, 1, 5] = np.inf  # ... and an infinite box
    found = decode(outputs, max_detections=5)
    assert found.shape == (2, 5, 6)
    np.testing.assert_allclose(found[0, 0], [6, 6, 14, 14, 1 / (1 + np.exp(-5.0)), 1], rtol=1e-6)
    assert np.all(found[0, 1:, 5] == -1)
    assert np.all(found[1, :, 5] == -1)


def test_decode_keeps_best_scores_first():
    outputs = np.full((1, 8, 8, 2 + 4), -10.0, "float32")
    outputs[..., 2:] = [0.5, 0.5, 1.0, 1.0]
    for (i, j, c), logit in zip([(1, 1, 0), (5, 5, 1), (1, 6, 1)], [0.0, 3.0, 1.0]):
        outputs[0, i, j, c] = logit
    found = decode(outputs, max_detections=2)
    np.testing.assert_array_equal(found[0, :, 5], [1, 1])
    np.testing.assert_allclose(found[0, :, 4], 1 / (1 + np.exp(-np.array([3.0, 1.0]))), rtol=1e-6)
    with pytest.raises(ValueError, match="`peak_kernel` must be an odd int"):
        decode(outputs, peak_kernel=2)
    with pytest.raises(ValueError, match="num_classes \\+ 4 channels"):
        decode(outputs[..., :3])
