"""Datasets from the user's own files: a `.npz` of arrays, a folder of images, a prepared tfds folder.

Wherever a dataset name is taken (`bayesft_keras.data.load`, `tune`,
`evaluate`, `study`), a path works too:

- `PATH.npz` holding `x` and `y` (split here, seeded), or `x_train` and
  `y_train` with optional `x_val`/`y_val` and `x_test`/`y_test` (the missing
  splits are carved from train, seeded);
- a folder of class subfolders of images (`folder/cat/1.png`, ...), or of
  `train/`, `val/` (or `validation/`), `test/` folders of class subfolders,
  read with `keras.utils.image_dataset_from_directory` (`data.image_folder`);
- a folder prepared by TensorFlow Datasets (holding `dataset_info.json`, or
  versions of it one or two levels down), read as the tfds names are.

Images become float32 NHWC in [0, 1] and labels int32 class indices, with the
same split rule as the named datasets (`data.dataset.split`).
"""

import hashlib
import os
import re
import zipfile

import numpy as np

from bayesft_keras.data import image_folder
from bayesft_keras.data import tfds_loader
from bayesft_keras.data.dataset import split_parts

NPZ_SUFFIX = ".npz"
_NPZ_PAIRS = (("x_train", "y_train"), ("x_val", "y_val"), ("x_test", "y_test"))
# A file suffix (".npz", ".csv"); tfds names carry none ("emnist/letters"), their versions a ":".
_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,9}")
_FINGERPRINTS = {}  # (path, size, mtime_ns) -> fingerprint of a .npz: hashed once per process


def looks_like_path(dataset):
    """Whether `dataset` names a file or folder rather than a dataset name.

    A path-like object, a string that exists on disk, starts with `/`, `~` or
    `.`, ends with a separator, or ends with a file suffix (`x.npz`,
    `x.csv`). tfds names ("mnist", "emnist/letters", "mnist:3.*.*") are none of these.
    """
    if isinstance(dataset, os.PathLike):
        return True
    if not isinstance(dataset, str) or not dataset:
        return False
    if os.path.exists(os.path.expanduser(dataset)):
        return True
    if dataset.startswith(("/", "~", ".")) or dataset.endswith(("/", os.sep)):
        return True
    return ":" not in dataset and _SUFFIX.fullmatch(os.path.splitext(dataset)[1]) is not None


def resolve(dataset):
    """The absolute path of a dataset file or folder, checked to exist and to be of a known form.

    Raises:
        ValueError: no such file or folder, or a file that is not a `.npz`.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(dataset)))
    if not os.path.exists(path):
        raise ValueError(
            f"`dataset` must be a dataset name, a .npz file or a folder of images; no such file or "
            f"folder: {path}. Received: dataset={os.fspath(dataset)!r}"
        )
    if os.path.isfile(path) and not path.lower().endswith(NPZ_SUFFIX):
        raise ValueError(
            "`dataset` files must be .npz archives (or give a folder of class subfolders of images, "
            f"or a tfds folder). Received: dataset={os.fspath(dataset)!r}"
        )
    return path


def fingerprint(path):
    """A short content fingerprint of a dataset file or folder, to tell a changed one on resume.

    A `.npz`: the SHA-256 of its bytes. A folder: the SHA-256 of every
    non-hidden file's relative path and size (reading every image would cost
    as much as loading them; an image edited in place to the same size goes
    unnoticed).
    """
    path = os.path.abspath(path)
    digest = hashlib.sha256()
    if os.path.isfile(path):
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in _FINGERPRINTS:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            _FINGERPRINTS[key] = "sha256:" + digest.hexdigest()[:16]
        return _FINGERPRINTS[key]
    for root, dirs, names in os.walk(path):
        # Hidden files (.DS_Store, .ipynb_checkpoints) are not data: Keras skips them too.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            full = os.path.join(root, name)
            digest.update(f"{os.path.relpath(full, path)}\0{os.path.getsize(full)}\n".encode())
    return "files-sha256:" + digest.hexdigest()[:16]


def load(dataset, *, seed, test_fraction, validation_fraction, input_shape=None):
    """The `Dataset` of a `.npz` file or a folder (see the module's docstring); unchecked, unfitted.

    Args:
        dataset: the path.
        seed: seed of the splits the file does not hold.
        test_fraction, validation_fraction: the sizes of those splits.
        input_shape: (height, width, channels) images of a folder are
            resized to when their sizes differ (an error without it).
    """
    path = resolve(dataset)
    sizes = dict(seed=seed, test_fraction=test_fraction, validation_fraction=validation_fraction)
    if os.path.isfile(path):
        return load_npz(path, **sizes)
    prepared = tfds_loader.prepared_folder(path)
    if prepared is not None:
        return tfds_loader.load_folder(prepared, path, input_shape=input_shape, **sizes)
    return image_folder.load(path, input_shape=input_shape, **sizes)


def load_npz(path, *, seed, test_fraction, validation_fraction):
    """The `Dataset` of a `.npz` of `x`/`y` or `x_train`/`y_train` (+ `x_val`/`y_val`, `x_test`/`y_test`)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"`dataset` must be a .npz archive of arrays (`np.savez`); {path!r} cannot be read as one "
            f"({' '.join(str(e).split())}). Received: dataset={path!r}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            "`dataset` must be a .npz archive of named arrays (`np.savez(path, x=..., y=...)`). "
            f"Received: dataset={path!r}, a single array of shape {np.shape(archive)}"
        )
    with archive:
        keys = sorted(archive.files)
        layout = _npz_layout(path, keys)
        arrays = {}
        for key in (k for pair in layout.values() for k in pair):
            try:
                arrays[key] = archive[key]
            except ValueError:  # object arrays: never unpickled
                raise ValueError(
                    f"`{key}` of dataset {path!r} must hold numbers. Received: an array of Python "
                    "objects (dtype object)"
                ) from None
    parts = {}
    for part, (x_key, y_key) in layout.items():
        x, y = image_array(x_key, arrays[x_key], path), np.asarray(arrays[y_key])
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(
                f"`{y_key}` of dataset {path!r} must hold one label per image of `{x_key}`. "
                f"Received: {len(x)} images, labels of shape {y.shape}"
            )
        parts[part] = (x, y, x_key, y_key)
    scales = pixel_scales({x_key: x for x, _, x_key, _ in parts.values()}, path)
    labels, num_classes = class_indices({y_key: y for _, y, _, y_key in parts.values()}, path)
    images = {part: scale_images(x, scales[x_key]) for part, (x, _, x_key, _) in parts.items()}
    labels = {part: labels[y_key] for part, (_, _, _, y_key) in parts.items()}
    return split_parts(path, images, labels, num_classes, seed, test_fraction, validation_fraction)


def _npz_layout(path, keys):
    """`{part: (x_key, y_key)}` of a .npz's keys: part "all" for `x`/`y`, else train/val/test."""
    expected = (
        "arrays `x` and `y`, or `x_train` and `y_train` (with optional `x_val`/`y_val`, "
        "`x_test`/`y_test`)"
    )
    flat = {"x", "y"} & set(keys)
    split_keys = {k for pair in _NPZ_PAIRS for k in pair} & set(keys)
    if flat and split_keys:
        raise ValueError(
            f"`dataset` {path!r} must hold {expected}, not both kinds. Received: arrays {keys}"
        )
    pairs = (("x", "y"),) if flat else _NPZ_PAIRS
    layout = {}
    for x_key, y_key in pairs:
        present = [k for k in (x_key, y_key) if k in keys]
        if len(present) == 1:
            missing = y_key if present[0] == x_key else x_key
            raise ValueError(
                f"`dataset` {path!r} holds `{present[0]}` but no `{missing}`: it must hold {expected}. "
                f"Received: arrays {keys}"
            )
        if present:
            layout["all" if x_key == "x" else x_key[2:]] = (x_key, y_key)
    if "all" not in layout and "train" not in layout:
        raise ValueError(f"`dataset` {path!r} must hold {expected}. Received: arrays {keys}")
    return layout


def image_array(key, x, source):
    """`x` as NHWC images (a grey (N, H, W) gains a channel); raises on arrays that are not images."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(
            f"`{key}` of dataset {source!r} must hold numeric images. Received: an array of dtype {x.dtype}"
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise ValueError(
            f"`{key}` of dataset {source!r} must hold images of shape (N, H, W) or (N, H, W, C). "
            f"Received: an array of shape {x.shape}"
        )
    if x.shape[1] in (1, 3, 4) and x.shape[3] > 4:
        raise ValueError(
            f"`{key}` of dataset {source!r} must hold channels-last images (N, H, W, C). Received: shape "
            f"{x.shape}, channels first; transpose it with `x.transpose(0, 2, 3, 1)`"
        )
    if len(x) == 0:
        raise ValueError(f"`{key}` of dataset {source!r} must hold images. Received: 0 images")
    return x


def pixel_scales(arrays, source):
    """`{key: divisor}` that brings each image array to [0, 1].

    Integers are 8-bit pixel values (divided by 255; `uint16` arrays with
    values above 255 by 65535); bools are 0/1. Floats in [0, 1] are kept and
    floats in [0, 255] are 8-bit values (divided by 255), one rule for every
    float array of the file so that its splits scale alike. Any other range
    (negative, standardised, above 255) is refused: rescale it to [0, 1] first.
    """
    scales, floats = {}, {}
    for key, x in arrays.items():
        if x.dtype.kind == "b":
            scales[key] = 1.0
            continue
        if x.dtype.kind == "f":
            if not np.isfinite(x).all():
                bad = int((~np.isfinite(x)).sum())
                raise ValueError(
                    f"`{key}` of dataset {source!r} must hold finite numbers. Received: {bad} NaN or "
                    "infinite value(s)"
                )
            floats[key] = x
            continue
        low, high = int(x.min()), int(x.max())
        if x.dtype == np.uint16 and high > 255:
            scales[key] = 65535.0
        elif 0 <= low and high <= 255:
            scales[key] = 255.0
        else:
            raise ValueError(
                f"`{key}` of dataset {source!r} must hold pixel values in [0, 255] (or floats in [0, 1]). "
                f"Received: {x.dtype} values in [{low}, {high}]"
            )
    if floats:
        low = min(float(x.min()) for x in floats.values())
        high = max(float(x.max()) for x in floats.values())
        if low < 0 or high > 255:
            keys = ", ".join(f"`{k}`" for k in floats)
            raise ValueError(
                f"{keys} of dataset {source!r} must hold images in [0, 1] (or 8-bit values in [0, 255]). "
                f"Received: values in [{low:.4g}, {high:.4g}]; rescale them to [0, 1]"
            )
        scales.update({key: 1.0 if high <= 1.0 else 255.0 for key in floats})
    return scales


def scale_images(x, divisor):
    x = x.astype("float32")
    return x if divisor == 1.0 else x / np.float32(divisor)


def class_indices(arrays, source):
    """`({key: int32 labels}, num_classes)` of a file's label arrays, one numbering for all.

    Integer labels (or integral floats) are the class indices as they are,
    and the classes are 0 .. the largest label. One-hot rows (N, C) are their
    argmax, with C classes. String labels are numbered in sorted order.
    """
    labels, num_classes = {}, 0
    strings = [k for k, y in arrays.items() if np.asarray(y).dtype.kind in "US"]
    if strings and len(strings) != len(arrays):
        raise ValueError(
            f"The labels of dataset {source!r} must be all strings or all class indices. Received: "
            f"strings in {strings} only"
        )
    names = sorted({str(v) for k in strings for v in np.asarray(arrays[k]).reshape(-1)})
    for key, y in arrays.items():
        y = np.asarray(y)
        if strings:
            labels[key] = np.searchsorted(names, y.reshape(-1).astype(str)).astype("int32")
            continue
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"`{key}` of dataset {source!r} must hold class indices. Received: labels of dtype {y.dtype}"
            )
        if y.ndim == 2 and y.shape[1] > 1:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
                raise ValueError(
                    f"`{key}` of dataset {source!r} must hold one class index per image, or one-hot rows. "
                    f"Received: labels of shape {y.shape} that are not one-hot"
                )
            num_classes = max(num_classes, y.shape[1])
            y = np.argmax(y, axis=1)
        elif y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(
                f"`{key}` of dataset {source!r} must hold one class index per image. Received: labels of "
                f"shape {y.shape}"
            )
        values = y.astype("float64")
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(
                f"`{key}` of dataset {source!r} must hold class indices: integers >= 0. Received: "
                f"{int(bad.sum())} label(s) that are not, the first {key}[{first}]={y[first].item()!r}"
            )
        labels[key] = y.astype("int32")
        num_classes = max(num_classes, int(y.max()) + 1)
    present = np.unique(np.concatenate(list(labels.values())))
    if len(present) < 2:
        shown = names[present[0]] if strings else int(present[0])
        raise ValueError(
            f"The labels of dataset {source!r} must name at least 2 classes. Received: one class, "
            f"{shown!r}, in {sorted(arrays)}"
        )
    return labels, (len(names) if strings else num_classes)
