"""The detector's training objective: CenterNet target maps and loss.

Boxes become dense maps on the host once (`encode_targets`), so training is an
ordinary `model.fit(x, maps)` and the loss is a few `keras.ops` on two
same-shaped tensors. A target map has `num_classes + 5` channels per grid
cell: the class heatmaps (a Gaussian around each object's centre cell, exactly
1 at it), the regression targets `dx, dy, w, h` and a mask that is 1 at the
centre cells.
"""

import keras
import numpy as np
from keras import ops

from bayesft_keras.detection.data import check_boxes
from bayesft_keras.detection.model import NUM_BOX_CHANNELS
from bayesft_keras.detection.model import STRIDE


def gaussian_radius(height, width, min_overlap=0.7):
    """CenterNet's heatmap radius (grid cells) for a box of `height` x `width` cells.

    The radius within which a corner-shifted box still overlaps the true box
    by `min_overlap`; the original implementation's formula, so the
    heatmaps match CenterNet's.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def encode_targets(y, image_shape, num_classes, stride=STRIDE):
    """Padded boxes -> the detector's target maps.

    Args:
        y: boxes `(N, max_boxes, 6)` in pixels (`bayesft_keras.detection.data`);
            padding (class -1) and crowd boxes are left out.
        image_shape: the images' (height, width, ...).
        num_classes: number of classes.
        stride: the detector's output stride.

    Returns:
        float32 `(N, height / stride, width / stride, num_classes + 5)`.
    """
    y = check_boxes(y)
    grid_h, grid_w = int(image_shape[0]) // stride, int(image_shape[1]) // stride
    maps = np.zeros((len(y), grid_h, grid_w, num_classes + NUM_BOX_CHANNELS + 1), "float32")
    rows, cols = np.arange(grid_h)[:, None], np.arange(grid_w)[None, :]
    for n, k in zip(*np.nonzero((y[..., 4] >= 0) & (y[..., 5] == 0))):
        x_min, y_min, x_max, y_max, label = (float(v) for v in y[n, k, :5])
        label = int(label)
        if not 0 <= label < num_classes:
            raise ValueError(
                f"Box class {label} is outside [0, {num_classes}): `num_classes` is {num_classes}."
            )
        w, h = (x_max - x_min) / stride, (y_max - y_min) / stride
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x_min + x_max) / (2 * stride), (y_min + y_max) / (2 * stride)
        i, j = min(int(cy), grid_h - 1), min(int(cx), grid_w - 1)
        radius = max(0, int(gaussian_radius(h, w)))
        sigma = (2 * radius + 1) / 6
        blob = np.exp(-((rows - i) ** 2 + (cols - j) ** 2) / (2 * sigma**2))
        np.maximum(maps[n, :, :, label], blob, out=maps[n, :, :, label])
        maps[n, i, j, label] = 1.0
        maps[n, i, j, num_classes:] = (cx - j, cy - i, w, h, 1.0)
    return maps


@keras.saving.register_keras_serializable(package="bayesft_keras")
class CenterNetLoss(keras.losses.Loss):
    """CenterNet's loss: penalty-reduced focal loss on the heatmaps plus L1 on the boxes.

    `y_true` are the maps of `encode_targets`; `y_pred` the detector's
    output (heatmap logits, dx, dy, w, h). Each term is normalised by the
    number of objects in the image, as in CenterNet.

    Args:
        offset_weight: weight of the L1 loss of the centre offsets.
        size_weight: weight of the L1 loss of the box sizes (in grid cells).
        alpha, beta: the focal loss's exponents (CenterNet's 2 and 4).
        name, reduction, dtype: as `keras.losses.Loss`.
    """

    def __init__(
        self,
        offset_weight=1.0,
        size_weight=0.1,
        alpha=2.0,
        beta=4.0,
        name="centernet_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        for arg, value in (("offset_weight", offset_weight), ("size_weight", size_weight),
                           ("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{arg}` must be a number >= 0. Received: {arg}={value!r}")
        self.offset_weight = float(offset_weight)
        self.size_weight = float(size_weight)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[-1] - NUM_BOX_CHANNELS
        if y_true.shape[-1] != num_classes + NUM_BOX_CHANNELS + 1:
            raise ValueError(
                f"`y_true` must be target maps with {num_classes + NUM_BOX_CHANNELS + 1} "
                f"channels (encode_targets) for a detector output of {y_pred.shape[-1]}. "
                f"Received y_true of shape {tuple(y_true.shape)}"
            )
        y_true = ops.cast(y_true, y_pred.dtype)
        heat = y_true[..., :num_classes]
        boxes = y_true[..., num_classes : num_classes + NUM_BOX_CHANNELS]
        mask = y_true[..., num_classes + NUM_BOX_CHANNELS :]
        logits = y_pred[..., :num_classes]
        predicted_boxes = y_pred[..., num_classes:]

        probability = ops.sigmoid(logits)
        positive = ops.cast(heat >= 1.0, y_pred.dtype)
        positive_term = positive * (1.0 - probability) ** self.alpha * ops.log_sigmoid(logits)
        negative_term = (
            (1.0 - positive) * (1.0 - heat) ** self.beta * probability**self.alpha
            * ops.log_sigmoid(-logits)
        )
        objects = ops.maximum(ops.sum(mask, axis=(1, 2, 3)), 1.0)
        focal = -ops.sum(positive_term + negative_term, axis=(1, 2, 3)) / objects
        l1 = ops.abs(predicted_boxes - boxes) * mask
        offset = ops.sum(l1[..., :2], axis=(1, 2, 3)) / objects
        size = ops.sum(l1[..., 2:], axis=(1, 2, 3)) / objects
        return focal + self.offset_weight * offset + self.size_weight * size

    def get_config(self):
        config = super().get_config()
        config.update(
            offset_weight=self.offset_weight, size_weight=self.size_weight,
            alpha=self.alpha, beta=self.beta,
        )
        return config
