"""Object detection under drift: a CenterNet-style ReRAM detector, its data, loss, decoding and mAP.

Detection data are plain arrays, images and padded boxes `(N, max_boxes, 6)`
(`data.BOX_COLUMNS`); the detector has one output; `DetectionMAP` scores its
raw outputs with pycocotools. So the drift tools take a detector as they take
a classifier::

    ds = detection.load("digits-detect")
    hypermodel = detection.DetectionHyperModel(ds.input_shape, ds.num_classes)
    ...
    evaluate_drift(model, ds, metric=detection.DetectionMAP("map50"))
"""

from bayesft_keras.detection.data import BOX_COLUMNS
from bayesft_keras.detection.data import DetectionDataset
from bayesft_keras.detection.data import available
from bayesft_keras.detection.data import digits_detect
from bayesft_keras.detection.data import load
from bayesft_keras.detection.decode import DETECTION_COLUMNS
from bayesft_keras.detection.decode import decode
from bayesft_keras.detection.hypermodel import DetectionHyperModel
from bayesft_keras.detection.hypermodel import DetectionNoiseInjectionHyperModel
from bayesft_keras.detection.losses import CenterNetLoss
from bayesft_keras.detection.losses import encode_targets
from bayesft_keras.detection.metrics import DetectionMAP
from bayesft_keras.detection.metrics import coco_evaluate
from bayesft_keras.detection.metrics import mean_average_precision
from bayesft_keras.detection.model import SITES
from bayesft_keras.detection.model import build_detector

__all__ = [
    "BOX_COLUMNS",
    "DETECTION_COLUMNS",
    "SITES",
    "CenterNetLoss",
    "DetectionDataset",
    "DetectionHyperModel",
    "DetectionMAP",
    "DetectionNoiseInjectionHyperModel",
    "available",
    "build_detector",
    "coco_evaluate",
    "decode",
    "digits_detect",
    "encode_targets",
    "load",
    "mean_average_precision",
]
