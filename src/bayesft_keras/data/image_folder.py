"""A folder of class subfolders of images as a `Dataset`, read by `keras.utils.image_dataset_from_directory`.

`folder/<class>/<image>` (images in deeper folders count for their class), or
`folder/train/<class>/...` with optional `val/` (or `validation/`) and
`test/`: the splits a folder lacks are carved from train, seeded, as for a
`.npz` (`dataset.split_parts`). Classes are the subfolder names in sorted
order (those of `train/` for a split folder); hidden folders are skipped.

Images keep their own size when they share one. Images of several sizes are
resized (bilinear) to `input_shape` when it is given, and refused without
it: a silent resize to a guessed size would change what the network sees.
Images that are all greyscale are read with one channel, others as RGB
(an alpha channel is dropped). Pixels are divided by 255.
"""

import os

import numpy as np

from bayesft_keras.data.dataset import split_parts

# What `image_dataset_from_directory` reads; other files are ignored by it.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_GREY_MODES = ("1", "L", "I", "I;16", "F")
_BATCH = 256


def subfolders(path):
    """The non-hidden subfolder names of `path`, sorted (as Keras lists the classes)."""
    return sorted(
        d for d in os.listdir(path) if not d.startswith(".") and os.path.isdir(os.path.join(path, d))
    )


def load(path, *, seed, test_fraction, validation_fraction, input_shape=None):
    """The `Dataset` of an image folder (see the module's docstring); unchecked, unfitted."""
    parts = _parts(path)
    classes = subfolders(parts["train"] if "train" in parts else parts["all"])
    listed = {part: _index(folder, classes, path) for part, folder in parts.items()}
    paths = [p for files, _ in listed.values() for p in files]
    image_size, color_mode = _image_format(paths, path, input_shape)
    images, labels = {}, {}
    for part, folder in parts.items():
        images[part], labels[part] = _read(folder, listed[part], classes, image_size, color_mode)
    present = np.unique(np.concatenate(list(labels.values())))
    if len(present) < 2:
        raise ValueError(
            f"`dataset` folder {path!r} must hold images of at least 2 classes (one subfolder each). "
            f"Received: images of one class, {classes[present[0]]!r}"
        )
    return split_parts(path, images, labels, len(classes), seed, test_fraction, validation_fraction)


def _parts(path):
    """`{part: folder}`: "all" for a folder of classes, else "train" (+ "val", "test")."""
    names = subfolders(path)
    if not names:
        raise ValueError(
            f"`dataset` folder {path!r} must hold one subfolder of images per class "
            f"({', '.join(IMAGE_SUFFIXES)}). Received: a folder with no subfolders"
        )
    if "train" not in names or not set(names) <= set(_SPLIT_FOLDERS):
        return {"all": path}
    parts = {}
    for name in names:
        part = _SPLIT_FOLDERS[name]
        if part in parts:
            raise ValueError(
                f"`dataset` folder {path!r} must hold one validation folder, `val` or `validation`. "
                "Received: both"
            )
        parts[part] = os.path.join(path, name)
    return parts


def _index(folder, classes, source):
    """`(file paths, class names present)` of one folder of class subfolders, in Keras's order."""
    import keras

    names = subfolders(folder)
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(
            f"`dataset` folder {source!r}: {folder!r} has classes {unknown} that train/ lacks. "
            f"Received: train classes {classes}"
        )
    try:
        # Only the listing is used: nothing is decoded until the dataset is iterated.
        listing = keras.utils.image_dataset_from_directory(
            folder, labels="inferred", class_names=names, image_size=(1, 1), shuffle=False,
            batch_size=None, verbose=False,
        )
    except ValueError as e:
        if "No images found" not in str(e):
            raise
        raise ValueError(
            f"`dataset` folder {source!r} must hold one subfolder of images per class "
            f"({', '.join(IMAGE_SUFFIXES)}). Received: no images in the subfolders of {folder!r}"
        ) from None
    files = list(listing.file_paths)
    counts = {name: 0 for name in names}
    for file in files:
        counts[_class_of(file, folder)] += 1
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise ValueError(
            f"`dataset` folder {source!r}: every class subfolder must hold images "
            f"({', '.join(IMAGE_SUFFIXES)}). Received: none in {empty} of {folder!r}"
        )
    return files, names


def _class_of(file, folder):
    return os.path.relpath(file, folder).split(os.sep)[0]


def _image_format(paths, source, input_shape):
    """`(image_size, color_mode)` for `image_dataset_from_directory`, from the image headers."""
    from PIL import Image

    sizes, grey = {}, True
    for file in paths:
        try:
            with Image.open(file) as image:
                sizes.setdefault((image.height, image.width), file)
                grey = grey and image.mode in _GREY_MODES
        except OSError as e:
            raise ValueError(
                f"`dataset` folder {source!r} must hold readable images. Received: {file!r} "
                f"({' '.join(str(e).split())})"
            ) from None
    color_mode = "grayscale" if grey else "rgb"
    if input_shape is not None and len(sizes) != 1:
        return (int(input_shape[0]), int(input_shape[1])), color_mode
    if len(sizes) <= 1:  # one size (no images: `_index` refused the folder already)
        return next(iter(sizes), (1, 1)), color_mode
    (first, a), (second, b) = list(sizes.items())[:2]
    raise ValueError(
        f"The images of dataset {source!r} must share one size, or be resized to `input_shape` "
        f"(--input-shape H,W,C). Received: input_shape=None and {len(sizes)} sizes, e.g. {first} "
        f"({os.path.relpath(a, source)}) and {second} ({os.path.relpath(b, source)})"
    )


def _read(folder, listed, classes, image_size, color_mode):
    """One folder's images (float32 in [0, 1]) and int32 labels numbered by `classes`."""
    import keras

    files, names = listed
    ds = keras.utils.image_dataset_from_directory(
        folder, labels="inferred", label_mode="int", class_names=names, color_mode=color_mode,
        image_size=image_size, shuffle=False, batch_size=_BATCH, verbose=False,
    )
    xs = [x for x, _ in ds.as_numpy_iterator()]
    x = np.concatenate(xs).astype("float32") / np.float32(255.0)
    # Numbered by the whole dataset's classes (a test/ folder may lack some of train/'s).
    y = np.array([classes.index(_class_of(file, folder)) for file in files], dtype="int32")
    return x, y
