"""Object-detection data as plain arrays: `digits-detect` (embedded, offline) and tfds VOC / COCO.

Targets are one float32 array per split, shape `(N, max_boxes, 6)`: each row
is `(x_min, y_min, x_max, y_max, class, crowd)` in pixels of the (resized)
image, the box covering `[x_min, x_max) x [y_min, y_max)`. Unused rows are
padding with class -1. `crowd` = 1 marks a box that is neither to be found
nor to be penalised (COCO's crowd regions, VOC's "difficult" objects): the
metric ignores detections on it and training leaves it out. Fixed-size arrays
keep detection data as plain `(x, y)` arrays, so `evaluate_drift`, the tuner
and `model.fit` take it as they take labels.
"""

import dataclasses
import math

import numpy as np

from bayesft_keras.data.dataset import Dataset
from bayesft_keras.data.dataset import split
from bayesft_keras.utils import checks

BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max", "class", "crowd")
PADDING_CLASS = -1
DIGITS_DETECT = "digits-detect"
TFDS_DETECTION = ("voc/2007", "coco/2017")
_BATCH = 256


@dataclasses.dataclass(repr=False)
class DetectionDataset(Dataset):
    """A `bayesft_keras.data.Dataset` whose labels are padded box arrays.

    `y_*` have shape `(N, max_boxes, 6)` (see `BOX_COLUMNS`); passing the
    dataset to `evaluate_drift` uses its test split, as for classification.

    Attributes:
        class_names: the name of each class index.
    """

    class_names: tuple = ()

    @property
    def max_boxes(self):
        return self.y_train.shape[1]

    def fit_to(self, input_shape, mode="resize"):
        """A copy with images brought to `input_shape` and boxes moved with them."""
        copy = super().fit_to(input_shape, mode)
        for split_name in ("train", "val", "test"):
            x = getattr(self, f"x_{split_name}")
            y = getattr(self, f"y_{split_name}")
            setattr(copy, f"y_{split_name}", move_boxes(y, x.shape[1:3], input_shape[:2], mode))
        return copy

    def __repr__(self):
        return (
            f"DetectionDataset({self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, max_boxes={self.max_boxes}, "
            f"train={len(self.x_train)}, val={len(self.x_val)}, test={len(self.x_test)})"
        )


def move_boxes(y, old_size, new_size, mode="resize"):
    """Boxes of images of `old_size` (h, w) after `fit_images` to `new_size`."""
    y = np.array(y, dtype="float32", copy=True)
    (old_h, old_w), (new_h, new_w) = old_size, new_size
    real = y[..., 4] >= 0
    if mode == "resize":
        scale = np.array([new_w / old_w, new_h / old_h] * 2, dtype="float32")
        y[..., :4] = np.where(real[..., None], y[..., :4] * scale, y[..., :4])
    else:  # "pad": centred, as fit_images
        shift = np.array([(new_w - old_w) // 2, (new_h - old_h) // 2] * 2, dtype="float32")
        y[..., :4] = np.where(real[..., None], y[..., :4] + shift, y[..., :4])
    return y


def available():
    """The detection dataset names: the embedded one, then the tfds ones."""
    return [DIGITS_DETECT, *TFDS_DETECTION]


def load(
    name=DIGITS_DETECT,
    *,
    input_shape=None,
    data_dir=None,
    seed=0,
    test_fraction=0.2,
    validation_fraction=0.1,
    max_examples=None,
    max_boxes=None,
    **kwargs,
):
    """Loads a detection dataset by name with seeded train/validation/test splits.

    Args:
        name: "digits-detect" (scenes of scikit-learn's bundled digits,
            offline), "voc/2007" or "coco/2017" (tfds, prepared in
            `data_dir` beforehand; nothing is downloaded).
        input_shape: (height, width, channels) of the images, boxes moved
            with them. Required for the tfds datasets, whose images vary in
            size; digits-detect: its canvas (default (48, 48, 1)).
        data_dir: tfds data directory (default: $TFDS_DATA_DIR or
            ~/tensorflow_datasets).
        seed: seed of the splits and of the digits-detect scenes.
        test_fraction, validation_fraction: split sizes (tfds datasets keep
            their own evaluation split and carve only validation from train).
        max_examples: keep at most this many training scenes (tfds: read only
            about that many).
        max_boxes: rows of the box arrays; tfds images with more objects keep
            the largest `max_boxes` (default: digits-detect's max_digits,
            VOC 42, COCO 100).
        **kwargs: digits-detect options (`digits_detect`): `num_examples`,
            `max_digits`, `scale_range`, `min_digits`.

    Returns:
        A `DetectionDataset`.
    """
    if name == DIGITS_DETECT:
        if data_dir is not None:
            raise ValueError(
                f"`data_dir` is for the tfds datasets; {DIGITS_DETECT!r} is embedded. "
                f"Received: data_dir={data_dir!r}"
            )
        if max_boxes is not None:
            kwargs.setdefault("max_digits", max_boxes)
        image_size = None
        if input_shape is not None:
            shape = _check_input_shape(input_shape)
            if shape[0] != shape[1]:
                raise ValueError(
                    f"digits-detect draws square scenes. Received: input_shape={input_shape!r}"
                )
            image_size = shape[0]
            kwargs.setdefault("image_size", image_size)
        ds = digits_detect(
            seed=seed,
            test_fraction=test_fraction,
            validation_fraction=validation_fraction,
            **kwargs,
        )
        if max_examples is not None:
            ds.x_train, ds.y_train = ds.x_train[:max_examples], ds.y_train[:max_examples]
        if input_shape is not None and shape[2] != ds.input_shape[2]:
            ds = ds.fit_to(shape)
        return ds
    if name in TFDS_DETECTION:
        if kwargs:
            raise ValueError(
                f"Options {sorted(kwargs)} apply only to {DIGITS_DETECT!r}. "
                f"Received them with name={name!r}"
            )
        return load_tfds(
            name,
            input_shape=input_shape,
            data_dir=data_dir,
            seed=seed,
            validation_fraction=validation_fraction,
            max_examples=max_examples,
            max_boxes=max_boxes,
        )
    raise ValueError(f"Unknown detection dataset {name!r}. Valid names: {', '.join(available())}")


# -- digits-detect -----------------------------------------------------------------


def digits_detect(
    num_examples=3000,
    image_size=48,
    min_digits=1,
    max_digits=3,
    scale_range=(1.5, 3.0),
    seed=0,
    test_fraction=0.2,
    validation_fraction=0.1,
):
    """Scenes of scikit-learn's 8x8 handwritten digits at random positions and scales.

    The 1797 digits are first split (seeded, stratified) into train,
    validation and test digits; each split's scenes are drawn only from its own
    digits, so no test digit is ever seen in training. A scene is a black
    `image_size` square with `min_digits`..`max_digits` digits, each
    scaled by a factor in `scale_range` (bilinear) and placed where its
    square does not overlap another's; its box is the tight box of its ink.

    Args:
        num_examples: scenes in all three splits together.
        image_size: side of the square canvas in pixels.
        min_digits, max_digits: digits per scene (uniform).
        scale_range: (low, high) of the uniform scale factor of the 8x8 digits.
        seed: seed of the digit split and of the scenes.
        test_fraction, validation_fraction: fractions of digits and scenes.

    Returns:
        A `DetectionDataset` with images (N, image_size, image_size, 1) in
        [0, 1] and boxes (N, max_digits, 6); classes are the digits 0-9.
    """
    from sklearn.datasets import load_digits

    num_examples = checks.count("num_examples", num_examples, 3)
    image_size = checks.count("image_size", image_size, 8)
    min_digits = checks.count("min_digits", min_digits, 1)
    max_digits = checks.count("max_digits", max_digits, 1)
    if min_digits > max_digits:
        raise ValueError(
            f"`min_digits` must be <= `max_digits`. Received: min_digits={min_digits}, "
            f"max_digits={max_digits}"
        )
    try:
        low, high = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        low = high = -1.0
    if not 0.5 <= low <= high or 8 * high > image_size:
        raise ValueError(
            "`scale_range` must be (low, high) with 0.5 <= low <= high and 8 * high <= "
            f"image_size ({image_size}). Received: scale_range={scale_range!r}"
        )
    bunch = load_digits()
    digits = (bunch.images / 16.0).astype("float32")
    labels = bunch.target.astype("int32")
    parts = split(
        digits, labels, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed
    )
    sizes = {"test": round(num_examples * test_fraction), "val": round(num_examples * validation_fraction)}
    sizes["train"] = num_examples - sizes["test"] - sizes["val"]
    sources = {"train": parts[0:2], "val": parts[2:4], "test": parts[4:6]}
    arrays = {}
    for index, name in enumerate(("train", "val", "test")):
        rng = np.random.default_rng([seed, index])
        arrays[name] = _scenes(
            rng, *sources[name], sizes[name], image_size, min_digits, max_digits, (low, high)
        )
    return DetectionDataset(
        DIGITS_DETECT,
        *arrays["train"],
        *arrays["val"],
        *arrays["test"],
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
    )


def _scenes(rng, digits, labels, count, size, min_digits, max_digits, scale_range):
    from scipy import ndimage

    images = np.zeros((count, size, size, 1), dtype="float32")
    boxes = np.zeros((count, max_digits, 6), dtype="float32")
    boxes[..., 4] = PADDING_CLASS
    for n in range(count):
        placed = []  # squares (x0, y0, side) already on the canvas
        for k in range(rng.integers(min_digits, max_digits + 1)):
            index = rng.integers(len(digits))
            side = int(round(8 * rng.uniform(*scale_range)))
            tile = np.clip(ndimage.zoom(digits[index], side / 8, order=1), 0.0, 1.0)
            side = tile.shape[0]
            for _ in range(100):  # rejection sampling of a free spot
                x0, y0 = rng.integers(0, size - side + 1, size=2)
                if all(
                    x0 + side <= px or px + ps <= x0 or y0 + side <= py or py + ps <= y0
                    for px, py, ps in placed
                ):
                    break
            else:
                continue  # the canvas is full: fewer digits in this scene
            placed.append((x0, y0, side))
            window = images[n, y0 : y0 + side, x0 : x0 + side, 0]
            np.maximum(window, tile, out=window)
            # The box of the ink: rows and columns with a visible stroke.
            rows = np.flatnonzero(tile.max(axis=1) > 0.25)
            cols = np.flatnonzero(tile.max(axis=0) > 0.25)
            boxes[n, len(placed) - 1] = (
                x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1, labels[index], 0
            )
    return images, boxes


# -- tfds ----------------------------------------------------------------------------

# Per dataset: (train split, evaluation split, crowd field, default max_boxes).
# COCO's test split has no labels: its validation split is the test split here.
_TFDS = {
    "voc/2007": ("train", "test", "is_difficult", 42),
    "coco/2017": ("train", "validation", "is_crowd", 100),
}


def load_tfds(
    name,
    *,
    input_shape,
    data_dir=None,
    seed=0,
    validation_fraction=0.1,
    max_examples=None,
    max_boxes=None,
):
    """Loads tfds `voc/2007` or `coco/2017` (prepared beforehand) into memory.

    Images are resized to `input_shape` (aspect ratio not kept, as the
    images of one batch must share a shape), boxes with them. VOC 2007: its
    train split for training, its test split for test; COCO 2017: train, and
    its validation split as test (its test split has no labels). Validation is
    a seeded `validation_fraction` of train.

    Raises:
        DatasetNotPreparedError: the dataset is not in `data_dir`.
        ValueError: unknown name, or no `input_shape`.
    """
    from bayesft_keras.data import tfds_loader

    if name not in _TFDS:
        raise ValueError(f"Unknown detection dataset {name!r}. Valid names: {', '.join(available())}")
    if input_shape is None:
        raise ValueError(
            f"The images of {name!r} vary in size; pass `input_shape` (e.g. (128, 128, 3)) "
            "to resize them. Received: input_shape=None"
        )
    shape = _check_input_shape(input_shape)
    train_split, test_split, crowd_key, default_boxes = _TFDS[name]
    max_boxes = default_boxes if max_boxes is None else checks.count("max_boxes", max_boxes, 1)
    tfds = tfds_loader.import_tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:  # pragma: no cover (registered in tfds)
        raise ValueError(f"tfds does not know {name!r}; update tensorflow-datasets.") from None
    class_names = tuple(builder.info.features["objects"]["label"].names)
    limit = None if max_examples is None else math.ceil(max_examples / (1.0 - validation_fraction))
    read = dict(shape=shape, crowd_key=crowd_key, max_boxes=max_boxes, name=name, data_dir=data_dir)
    x, y = _read_detection(builder, train_split, limit, **read)
    x_test, y_test = _read_detection(builder, test_split, None, **read)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    held = int(math.ceil(validation_fraction * len(x)))
    val, train = order[:held], order[held:]
    if max_examples is not None:
        train = train[:max_examples]
    return DetectionDataset(
        name, x[train], y[train], x[val], y[val], x_test, y_test,
        num_classes=len(class_names), class_names=class_names,
    )


def _read_detection(builder, split_name, limit, *, shape, crowd_key, max_boxes, name, data_dir):
    import tensorflow as tf

    from bayesft_keras.data import tfds_loader

    try:
        ds = builder.as_dataset(split=split_name, shuffle_files=False)
    except AssertionError as e:  # tfds's "could not find data" error
        where = tfds_loader.data_dir_of(data_dir)
        raise tfds_loader.DatasetNotPreparedError(
            f"Dataset {name!r} is not prepared in {where}: run `tfds build {name} "
            f"--data_dir {where}` on a machine with internet (or pass --data-dir to where "
            f"it is prepared), or use --dataset {DIGITS_DETECT}."
        ) from e
    if limit is not None:
        ds = ds.take(limit)
    height, width, channels = shape

    def convert(example):
        image = tf.image.resize(tf.cast(example["image"], tf.float32) / 255.0, (height, width))
        if channels == 1:
            image = tf.reduce_mean(image, axis=-1, keepdims=True)
        objects = example["objects"]
        return image, objects["bbox"], objects["label"], objects[crowd_key]

    xs, ys = [], []
    for image, bbox, label, crowd in ds.map(convert).as_numpy_iterator():
        xs.append(image)
        ys.append(_pad_boxes(bbox, label, crowd, height, width, max_boxes))
    if not xs:
        raise ValueError(f"Split {split_name!r} of dataset {name!r} is empty.")
    return np.stack(xs).astype("float32"), np.stack(ys)


def _pad_boxes(bbox, label, crowd, height, width, max_boxes):
    """tfds boxes (normalised y_min, x_min, y_max, x_max) -> padded pixel rows."""
    out = np.zeros((max_boxes, 6), dtype="float32")
    out[:, 4] = PADDING_CLASS
    bbox = np.asarray(bbox, dtype="float32").reshape(-1, 4)
    rows = np.stack(
        [bbox[:, 1] * width, bbox[:, 0] * height, bbox[:, 3] * width, bbox[:, 2] * height,
         np.asarray(label, dtype="float32"), np.asarray(crowd, dtype="float32")],
        axis=1,
    )
    if len(rows) > max_boxes:  # keep the largest objects
        area = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
        rows = rows[np.sort(np.argsort(-area, kind="stable")[:max_boxes])]
    out[: len(rows)] = rows
    return out


# -- checks ----------------------------------------------------------------------


def _check_input_shape(input_shape):
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
        raise ValueError(
            "`input_shape` must be (height, width, channels) with 1 or 3 channels. "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def check_boxes(y, argument="y"):
    """Validates padded box targets; returns them as float32 (N, max_boxes, 6)."""
    y = np.asarray(y)
    if y.ndim != 3 or y.shape[-1] not in (5, 6):
        raise ValueError(
            f"`{argument}` must be padded boxes of shape (N, max_boxes, 6) with rows "
            f"{BOX_COLUMNS} (class -1 = padding; 5 columns: no crowd flag). "
            f"Received: {argument} of shape {y.shape}"
        )
    y = y.astype("float32")
    if y.shape[-1] == 5:
        y = np.concatenate([y, np.zeros(y.shape[:-1] + (1,), "float32")], axis=-1)
    return y


__all__ = [
    "BOX_COLUMNS",
    "DetectionDataset",
    "available",
    "check_boxes",
    "digits_detect",
    "load",
    "load_tfds",
    "move_boxes",
]
