"""Detector outputs -> boxes, scores and classes (CenterNet's peak extraction).

A detection is a local maximum of a class heatmap (3x3 max-pooling stands in
for non-maximum suppression, as in CenterNet) whose probability reaches a
threshold; its box is centred at the peak cell plus the predicted offset, with
the predicted size. Runs on NumPy arrays on the host, where the metric runs.
"""

import numpy as np

from bayesft_keras.detection.model import NUM_BOX_CHANNELS
from bayesft_keras.detection.model import STRIDE
from bayesft_keras.detection.model import num_classes_of

DETECTION_COLUMNS = ("x_min", "y_min", "x_max", "y_max", "score", "class")
_MAX_COORDINATE = 1e6


def decode(y_pred, stride=STRIDE, score_threshold=0.01, max_detections=100, peak_kernel=3):
    """Turns detector outputs into padded detections.

    Args:
        y_pred: detector outputs `(N, H, W, num_classes + 4)`: heatmap
            logits, then dx, dy, w, h (see `bayesft_keras.detection.model`).
        stride: pixels per output cell.
        score_threshold: lowest heatmap probability kept.
        max_detections: detections kept per image, best first.
        peak_kernel: side of the max-pooling window that finds peaks (odd).

    Returns:
        float32 `(N, max_detections, 6)`, rows `DETECTION_COLUMNS` in
        pixels, sorted by score; unused rows have class -1 and score 0.
        Outputs that are not finite (a badly drifted chip) give no detection.
    """
    from scipy import ndimage
    from scipy import special

    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 4:
        raise ValueError(
            "`y_pred` must be detector outputs of shape (N, H, W, num_classes + 4). "
            f"Received: y_pred of shape {y_pred.shape}"
        )
    num_classes = num_classes_of(y_pred.shape)
    for name, value in (("stride", stride), ("max_detections", max_detections)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    if isinstance(peak_kernel, bool) or not isinstance(peak_kernel, int) or peak_kernel < 1 or peak_kernel % 2 == 0:
        raise ValueError(f"`peak_kernel` must be an odd int >= 1. Received: peak_kernel={peak_kernel!r}")
    if not 0.0 <= score_threshold < 1.0:
        raise ValueError(
            f"`score_threshold` must be in [0, 1). Received: score_threshold={score_threshold!r}"
        )
    n, grid_h, grid_w, _ = y_pred.shape
    with np.errstate(invalid="ignore", over="ignore"):
        heat = special.expit(y_pred[..., :num_classes].astype("float64"))
        heat = np.where(np.isfinite(heat), heat, -1.0)
        peaks = heat == ndimage.maximum_filter(
            heat, size=(1, peak_kernel, peak_kernel, 1), mode="constant", cval=-1.0
        )
        regression = y_pred[..., num_classes:].astype("float64")
        finite_boxes = np.all(np.isfinite(regression), axis=-1, keepdims=True)
    scores = np.where(peaks & finite_boxes & (heat >= score_threshold), heat, -1.0).reshape(n, -1)
    k = min(max_detections, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    cell, label = np.divmod(top, num_classes)
    i, j = np.divmod(cell, grid_w)
    reg = regression.reshape(n, grid_h * grid_w, NUM_BOX_CHANNELS)
    reg = np.take_along_axis(reg, cell[..., None], axis=1)
    cx = (j + reg[..., 0]) * stride
    cy = (i + reg[..., 1]) * stride
    half_w = np.maximum(reg[..., 2], 0.0) * stride / 2
    half_h = np.maximum(reg[..., 3], 0.0) * stride / 2
    detections = np.zeros((n, max_detections, 6), dtype="float32")
    detections[..., 5] = -1
    valid = top_scores >= 0
    corners = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], -1)
    # A badly drifted chip can predict boxes beyond float32's range; clipped,
    # they still match nothing.
    corners = np.clip(corners, -_MAX_COORDINATE, _MAX_COORDINATE)
    rows = np.concatenate([corners, top_scores[..., None], label[..., None]], -1)
    detections[:, :k] = np.where(valid[..., None], rows, detections[:, :k])
    return detections
