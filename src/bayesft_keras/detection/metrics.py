"""Detection mAP by pycocotools, from plain arrays; a metric `evaluate_drift` can use.

`coco_evaluate` adapts padded arrays (ground truth as in
`bayesft_keras.detection.data`, detections as `decode` gives them) to COCO's
JSON structures and runs pycocotools' `COCOeval` unchanged: the reference
implementation of COCO mAP@[.5:.95] and AP50 (COCO's 101-point interpolated
average precision, averaged over the classes that have ground truth; crowd
boxes are COCO crowd regions). `DetectionMAP` decodes raw detector outputs and
scores them: `evaluate_drift(model, (x, y), metric=DetectionMAP())`.
"""

import contextlib
import io

import numpy as np

from bayesft_keras.detection.data import check_boxes
from bayesft_keras.detection.decode import DETECTION_COLUMNS
from bayesft_keras.detection.decode import decode
from bayesft_keras.detection.model import STRIDE
from bayesft_keras.detection.model import num_classes_of

# pycocotools' summary statistics, in its order.
STATS = (
    "map", "map50", "map75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)
MAP_KINDS = ("map50", "map", "map75")
# COCO's IoU thresholds 0.5:0.05:0.95, computed as pycocotools does.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_KIND_THRESHOLDS = {"map50": (0.5,), "map": COCO_IOU_THRESHOLDS, "map75": (0.75,)}
_TITLES = {"map50": "mAP@0.5", "map": "mAP@[.5:.95]", "map75": "mAP@0.75"}


def coco_evaluate(y_true, detections, num_classes=None):
    """COCO evaluation of padded detections against padded ground truth.

    Args:
        y_true: ground-truth boxes `(N, max_boxes, 6)` (or 5 columns,
            no crowd flag) in pixels, class -1 = padding.
        detections: `(N, max_detections, 6)` rows `DETECTION_COLUMNS`,
            class -1 = padding (as `decode` returns).
        num_classes: classes to evaluate, 0..num_classes-1 (default: those
            up to the largest class in either array); a class without ground
            truth is left out of the mean, as in COCO.

    Returns:
        `{name: value}` for the 12 `STATS` of pycocotools' summary
        (`map` = mAP@[.5:.95], `map50` = mAP@0.5, ...). With no detection
        at all every statistic is 0; a statistic without ground truth (e.g.
        `map_large` without large objects) is 0 too (pycocotools' -1).
    """
    evaluation = _evaluate(y_true, detections, num_classes)
    if evaluation is None:
        return {name: 0.0 for name in STATS}
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.summarize()
    return {name: max(float(v), 0.0) for name, v in zip(STATS, evaluation.stats)}


def mean_average_precision(
    y_true, detections, iou_thresholds=(0.5,), max_detections=100, num_classes=None
):
    """COCO-style mAP at the given IoU thresholds, over all object sizes.

    The same pycocotools computation as `coco_evaluate`'s `map50` (IoU 0.5)
    or `map` (`COCO_IOU_THRESHOLDS`), restricted to what that one number
    needs (one area range, one detection limit), which makes it several times
    faster: the metric of a drift sweep runs once per chip.

    Args:
        y_true, detections, num_classes: as `coco_evaluate`.
        iou_thresholds: the IoU thresholds to average over.
        max_detections: detections per image considered, best first.
    """
    thresholds = np.asarray(iou_thresholds, dtype="float64").reshape(-1)
    if thresholds.size == 0 or np.any((thresholds <= 0) | (thresholds > 1)):
        raise ValueError(
            f"`iou_thresholds` must be numbers in (0, 1]. Received: iou_thresholds={iou_thresholds!r}"
        )

    def configure(params):
        params.iouThrs = thresholds
        params.areaRng = [[0.0, 1e10]]
        params.areaRngLbl = ["all"]
        params.maxDets = [int(max_detections)]

    evaluation = _evaluate(y_true, detections, num_classes, configure)
    if evaluation is None:
        return 0.0
    # As COCOeval.summarize: precision[T, R, K, A, M], -1 where a class has no ground truth.
    precision = evaluation.eval["precision"][:, :, :, 0, 0]
    precision = precision[precision > -1]
    return float(np.mean(precision)) if precision.size else 0.0


def _evaluate(y_true, detections, num_classes=None, configure=None):
    """A run of pycocotools' COCOeval (evaluate + accumulate), or None without detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    y_true = check_boxes(y_true, "y_true")
    detections = np.asarray(detections, dtype="float64")
    if detections.ndim != 3 or detections.shape[-1] != len(DETECTION_COLUMNS) or len(
        detections
    ) != len(y_true):
        raise ValueError(
            f"`detections` must have shape ({len(y_true)}, max_detections, 6) with rows "
            f"{DETECTION_COLUMNS}, one entry per image of `y_true`. "
            f"Received: detections of shape {detections.shape}"
        )
    real = y_true[..., 4] >= 0
    if not np.any(real & (y_true[..., 5] == 0)):
        raise ValueError("`y_true` holds no (non-crowd) box: mAP is undefined without objects.")
    found = detections[..., 5] >= 0
    if num_classes is None:
        num_classes = int(max(y_true[..., 4].max(), detections[..., 5].max(initial=-1))) + 1
    if not np.any(found):
        return None

    annotations = []
    for n, k in zip(*np.nonzero(real)):
        x_min, y_min, x_max, y_max, label, crowd = (float(v) for v in y_true[n, k])
        w, h = max(x_max - x_min, 0.0), max(y_max - y_min, 0.0)
        annotations.append(
            {
                "id": len(annotations) + 1, "image_id": int(n), "category_id": int(label),
                "bbox": [x_min, y_min, w, h], "area": w * h, "iscrowd": int(crowd > 0),
            }
        )
    ground_truth = {
        "images": [{"id": n} for n in range(len(y_true))],
        "annotations": annotations,
        "categories": [{"id": c, "name": str(c)} for c in range(num_classes)],
    }
    n, k = np.nonzero(found)
    d = detections[n, k]
    # pycocotools' array form of results: [image_id, x, y, w, h, score, class].
    results = np.stack(
        [n, d[:, 0], d[:, 1], np.maximum(d[:, 2] - d[:, 0], 0.0),
         np.maximum(d[:, 3] - d[:, 1], 0.0), d[:, 4], d[:, 5]],
        axis=1,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        coco_true = COCO()
        coco_true.dataset = ground_truth
        coco_true.createIndex()
        coco_detections = coco_true.loadRes(results)
        evaluation = COCOeval(coco_true, coco_detections, iouType="bbox")
        evaluation.params.imgIds = list(range(len(y_true)))
        evaluation.params.catIds = list(range(num_classes))
        if configure is not None:
            configure(evaluation.params)
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation


class DetectionMAP:
    """Detection mAP of raw detector outputs: a metric for `evaluate_drift`.

    Called as `metric(y_true, y_pred)` with the padded boxes and the
    detector's outputs (NumPy arrays of all examples), it decodes the outputs
    (`decode`) and returns one statistic of `coco_evaluate`.

    Args:
        kind: "map50" (mAP at IoU 0.5), "map" (COCO mAP@[.5:.95]) or "map75".
        stride: the detector's output stride.
        score_threshold, max_detections, peak_kernel: as `decode`.
        num_classes: as `coco_evaluate` (default: from the outputs).
    """

    def __init__(
        self, kind="map50", stride=STRIDE, score_threshold=0.01, max_detections=100,
        peak_kernel=3, num_classes=None,
    ):
        if kind not in MAP_KINDS:
            raise ValueError(f"`kind` must be one of {list(MAP_KINDS)}. Received: kind={kind!r}")
        self.kind = kind
        self.stride = stride
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.peak_kernel = peak_kernel
        self.num_classes = num_classes
        # evaluate_drift labels its report with the metric's __name__.
        self.__name__ = kind
        self.title = _TITLES[kind]

    def decode(self, y_pred):
        return decode(
            y_pred, stride=self.stride, score_threshold=self.score_threshold,
            max_detections=self.max_detections, peak_kernel=self.peak_kernel,
        )

    def evaluate(self, y_true, y_pred):
        """All `STATS` of the decoded outputs (`coco_evaluate`)."""
        return coco_evaluate(y_true, self.decode(y_pred), num_classes=self._classes(y_pred))

    def __call__(self, y_true, y_pred):
        return mean_average_precision(
            y_true, self.decode(y_pred), iou_thresholds=_KIND_THRESHOLDS[self.kind],
            max_detections=self.max_detections, num_classes=self._classes(y_pred),
        )

    def _classes(self, y_pred):
        return self.num_classes or num_classes_of(np.shape(y_pred))

    def get_config(self):
        return {
            "kind": self.kind, "stride": self.stride, "score_threshold": self.score_threshold,
            "max_detections": self.max_detections, "peak_kernel": self.peak_kernel,
            "num_classes": self.num_classes,
        }

    def __repr__(self):
        return f"DetectionMAP({self.kind!r}, stride={self.stride})"
