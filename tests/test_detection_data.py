"""digits-detect scenes and the tfds VOC / COCO loaders (mocked tfds, offline)."""

import numpy as np
import pytest

from bayesft_keras.detection import data


@pytest.fixture(scope="module")
def scenes():
    return data.digits_detect(num_examples=400, seed=0)


def test_digits_detect_shapes_and_splits(scenes):
    assert isinstance(scenes, data.DetectionDataset)
    assert scenes.input_shape == (48, 48, 1)
    assert (len(scenes.x_train), len(scenes.x_val), len(scenes.x_test)) == (280, 40, 80)
    assert scenes.y_train.shape == (280, 3, 6) and scenes.y_train.dtype == np.float32
    assert scenes.num_classes == 10 and scenes.class_names[3] == "3"
    assert 0.0 <= scenes.x_train.min() and scenes.x_train.max() <= 1.0


def test_digits_detect_boxes(scenes):
    y = np.concatenate([scenes.y_train, scenes.y_val, scenes.y_test])
    x = np.concatenate([scenes.x_train, scenes.x_val, scenes.x_test])
    real = y[..., 4] >= 0
    counts = real.sum(axis=1)
    # 1-3 digits per scene, each count about a third of the scenes (binomial
    # sd of a count ~ 9.4 for 400 scenes; 5 sd).
    assert counts.min() >= 1 and counts.max() <= 3
    np.testing.assert_allclose(np.bincount(counts, minlength=4)[1:], 400 / 3, atol=47)
    # Real rows first, padding after; classes 0-9; no crowd.
    assert np.all(np.diff(real.astype(int), axis=1) <= 0)
    assert set(np.unique(y[real][:, 4])) == set(range(10))
    assert np.all(y[..., 5] == 0)
    boxes = y[real]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert boxes[:, :2].min() >= 0 and boxes[:, 2:4].max() <= 48
    # Digits scaled 1.5-3x from 8x8: the ink is at most 24 pixels high, and
    # at least ~half of the 12-pixel smallest tile.
    assert h.max() <= 24 and h.min() >= 6 and w.min() >= 2
    # Ink lies inside its boxes: outside every box, nothing above the box threshold.
    inside = np.zeros(x.shape[:3], bool)
    for n, k in zip(*np.nonzero(real)):
        x0, y0, x1, y1 = y[n, k, :4].astype(int)
        inside[n, y0:y1, x0:x1] = True
    assert x[..., 0][~inside].max() <= 0.25
    assert np.all([x[n, ..., 0][inside[n]].max() > 0.5 for n in range(len(x))])
    # Digits do not overlap.
    for n in np.nonzero(counts > 1)[0]:
        b = y[n][real[n]]
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                overlap_w = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
                overlap_h = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
                assert overlap_w <= 0 or overlap_h <= 0


def test_digits_detect_is_seeded(scenes):
    again = data.digits_detect(num_examples=400, seed=0)
    np.testing.assert_array_equal(again.x_train, scenes.x_train)
    np.testing.assert_array_equal(again.y_test, scenes.y_test)
    other = data.digits_detect(num_examples=400, seed=1)
    assert not np.array_equal(other.y_train, scenes.y_train)


def test_load_options():
    ds = data.load("digits-detect", input_shape=(64, 64, 3), num_examples=50, max_examples=20,
                   max_digits=2, scale_range=(2.0, 2.5))
    assert ds.x_train.shape == (20, 64, 64, 3) and ds.y_train.shape == (20, 2, 6)
    np.testing.assert_array_equal(ds.x_train[..., 0], ds.x_train[..., 2])
    real = ds.y_test[..., 4] >= 0
    assert (ds.y_test[real][:, 3] - ds.y_test[real][:, 1]).max() <= 20


def test_fit_to_moves_boxes(scenes):
    resized = scenes.fit_to((96, 96, 1))
    real = scenes.y_test[..., 4] >= 0
    np.testing.assert_allclose(resized.y_test[real][:, :4], scenes.y_test[real][:, :4] * 2)
    np.testing.assert_array_equal(resized.y_test[~real], scenes.y_test[~real])
    padded = scenes.fit_to((56, 56, 1), mode="pad")
    np.testing.assert_allclose(padded.y_test[real][:, :4], scenes.y_test[real][:, :4] + 4)
    # The box still frames the same pixels.
    n, k = np.argwhere(real)[0]
    x0, y0, x1, y1 = scenes.y_test[n, k, :4].astype(int)
    X0, Y0, X1, Y1 = padded.y_test[n, k, :4].astype(int)
    np.testing.assert_array_equal(padded.x_test[n, Y0:Y1, X0:X1], scenes.x_test[n, y0:y1, x0:x1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="mnist"), "Unknown detection dataset 'mnist'"),
        (dict(input_shape=(48, 64, 1)), "square scenes"),
        (dict(input_shape=(48, 48, 2)), "1 or 3 channels"),
        (dict(scale_range=(1.5, 7.0)), "`scale_range`"),
        (dict(min_digits=3, max_digits=2), "`min_digits` must be <= `max_digits`"),
        (dict(num_examples=2), "`num_examples` must be an int >= 3"),
        (dict(data_dir="/tmp"), "`data_dir` is for the tfds datasets"),
        (dict(name="voc/2007", input_shape=None), "pass `input_shape`"),
        (dict(name="voc/2007", input_shape=(64, 64, 3), max_digits=2), "apply only to 'digits-detect'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(**kwargs)


# -- tfds (mocked: no dataset is downloaded or needed) --------------------------


def _fake_split(crowd_key, rng, count):
    examples = []
    for _ in range(count):
        height, width = rng.integers(30, 60, size=2)
        objects = rng.integers(1, 5)
        top_left = rng.uniform(0, 0.5, size=(objects, 2))
        bbox = np.concatenate([top_left, top_left + rng.uniform(0.1, 0.5, size=(objects, 2))], 1)
        examples.append(
            {
                "image": rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8),
                "objects": {
                    "bbox": bbox.astype(np.float32),  # y_min, x_min, y_max, x_max
                    "label": rng.integers(0, 20, size=objects).astype(np.int64),
                    crowd_key: rng.random(objects) < 0.3,
                },
            }
        )
    return examples


@pytest.mark.parametrize("name, crowd_key, test_split", [
    ("voc/2007", "is_difficult", "test"),
    ("coco/2017", "is_crowd", "validation"),
])
def test_tfds_loader_converts_boxes(name, crowd_key, test_split):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    rng = np.random.default_rng(0)
    splits = {"train": _fake_split(crowd_key, rng, 20), test_split: _fake_split(crowd_key, rng, 6)}
    asked = []

    def as_dataset(self, split, **kwargs):
        asked.append(str(split))
        examples = splits[str(split)]

        def generate():
            yield from examples

        signature = {
            "image": tf.TensorSpec((None, None, 3), tf.uint8),
            "objects": {
                "bbox": tf.TensorSpec((None, 4), tf.float32),
                "label": tf.TensorSpec((None,), tf.int64),
                crowd_key: tf.TensorSpec((None,), tf.bool),
            },
        }
        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset):
        ds = data.load(name, input_shape=(32, 40, 3), seed=0, validation_fraction=0.25, max_boxes=3)
    assert sorted(asked) == sorted(["train", test_split])
    assert ds.x_train.shape == (15, 32, 40, 3) and ds.x_val.shape == (5, 32, 40, 3)
    assert ds.y_test.shape == (6, 3, 6) and ds.num_classes == len(ds.class_names) >= 20
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 1.0
    # The test split in order: its boxes in pixels of the resized image,
    # (x_min, y_min, x_max, y_max, class, crowd), the largest 3 kept in order.
    for example, row in zip(splits[test_split], ds.y_test):
        objects = example["objects"]
        b = objects["bbox"]
        expected = np.stack([b[:, 1] * 40, b[:, 0] * 32, b[:, 3] * 40, b[:, 2] * 32,
                             objects["label"], objects[crowd_key]], axis=1)
        if len(expected) > 3:
            area = (expected[:, 2] - expected[:, 0]) * (expected[:, 3] - expected[:, 1])
            expected = expected[np.sort(np.argsort(-area, kind="stable")[:3])]
        np.testing.assert_allclose(row[: len(expected)], expected, rtol=1e-6)
        np.testing.assert_array_equal(row[len(expected):, 4], -1)


def test_tfds_dataset_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from bayesft_keras.data.tfds_loader import DatasetNotPreparedError

    with pytest.raises(DatasetNotPreparedError, match="tfds build voc/2007 --data_dir"):
        data.load("voc/2007", input_shape=(64, 64, 3), data_dir=str(tmp_path))
