"""Datasets by name (`digits`, embedded and offline; `synthetic`; tfds image datasets) or by path.

A path is the user's own data: a `.npz` of arrays, a folder of class
subfolders of images, or a folder prepared by tfds (`data.files`).

Every loader returns a `Dataset` with explicit, seeded train/validation/test
splits of float32 images in [0, 1] (NHWC) and int32 labels.
"""

from bayesft_keras.data.dataset import Dataset
from bayesft_keras.data.dataset import fit_images
from bayesft_keras.data.registry import available
from bayesft_keras.data.registry import fingerprint
from bayesft_keras.data.registry import is_path
from bayesft_keras.data.registry import load
from bayesft_keras.data.registry import resolve

__all__ = ["Dataset", "available", "fingerprint", "fit_images", "is_path", "load", "resolve"]
