"""Datasets by name: `digits` (embedded, offline), `synthetic`, and tfds image datasets.

Every loader returns a `Dataset` with explicit, seeded train/validation/test
splits of float32 images in [0, 1] (NHWC) and int32 labels.
"""

from bayesft_keras.data.dataset import Dataset
from bayesft_keras.data.dataset import fit_images
from bayesft_keras.data.registry import available
from bayesft_keras.data.registry import load

__all__ = ["Dataset", "available", "fit_images", "load"]
