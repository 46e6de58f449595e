"""The user's own data: `.npz` files, folders of class subfolders of images, tfds-prepared folders."""

import json
import re

import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bayesft_keras import data
from bayesft_keras.cli import app
from bayesft_keras.tuning.config import TuneConfig


def _numbered(n, shape=(6, 6)):
    """`n` uint8 images whose first two pixels spell their index (i % 256, i // 256)."""
    x = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return x


def _ids(x):
    """The indices `_numbered` wrote into images scaled to [0, 1]."""
    pixels = np.round(x[:, 0, :2, 0] * 255).astype(int)
    return pixels[:, 0] + 256 * pixels[:, 1]


def _save_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _image_folder(root, classes, per_class, size=(6, 7), mode="L", sizes=None):
    """root/<class>/<i>.png; every pixel of class k's images is 40 * k + i (its class and index)."""
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)] if sizes else size
            value = np.full((h, w) if mode == "L" else (h, w, 3), 40 * k + i, dtype=np.uint8)
            Image.fromarray(value, mode).save(root / name / f"{i}.png")
    return str(root)


def _all_ids(ds):
    return [_ids(x) for x in (ds.x_train, ds.x_val, ds.x_test)]


# -- .npz ------------------------------------------------------------------------------------


def test_npz_of_x_and_y_is_split_like_the_named_datasets(tmp_path):
    x, y = _numbered(100), np.arange(100) % 4
    path = _save_npz(tmp_path / "mine.npz", x=x, y=y)
    ds = data.load(path, seed=0)
    assert ds.name == path and ds.input_shape == (6, 6, 1) and ds.num_classes == 4
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (70, 10, 20)  # digits' fractions
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    train, val, test = _all_ids(ds)
    assert sorted(np.concatenate([train, val, test])) == list(range(100))  # disjoint, complete
    for ids, labels in ((train, ds.y_train), (val, ds.y_val), (test, ds.y_test)):
        np.testing.assert_array_equal(labels, y[ids])  # each label stays with its image
    np.testing.assert_allclose(ds.x_test[..., 0], x[test] / 255.0, atol=1e-7)  # uint8 / 255
    assert np.bincount(ds.y_test).tolist() == [5, 5, 5, 5]  # stratified
    again, other = data.load(path, seed=0), data.load(path, seed=1)
    np.testing.assert_array_equal(_ids(again.x_test), test)
    assert set(_ids(other.x_test)) != set(test)


def test_npz_keeps_the_splits_it_holds_and_carves_the_rest(tmp_path):
    x, y = _numbered(100), np.arange(100) % 2
    given = dict(x_train=x[:60], y_train=y[:60], x_val=x[60:75], y_val=y[60:75], x_test=x[75:], y_test=y[75:])
    ds = data.load(_save_npz(tmp_path / "all.npz", **given))
    assert [list(ids) for ids in _all_ids(ds)] == [list(range(60)), list(range(60, 75)), list(range(75, 100))]

    ds = data.load(_save_npz(tmp_path / "test.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:]))
    train, val, test = _all_ids(ds)
    assert list(test) == list(range(80, 100))  # as given, in order
    assert (len(train), len(val)) == (72, 8)  # validation: 10 % of train, as for tfds datasets
    assert sorted(np.concatenate([train, val])) == list(range(80))

    ds = data.load(_save_npz(tmp_path / "val.npz", x_train=x[:80], y_train=y[:80], x_val=x[80:], y_val=y[80:]))
    train, val, test = _all_ids(ds)
    assert list(val) == list(range(80, 100)) and (len(train), len(test)) == (64, 16)

    ds = data.load(_save_npz(tmp_path / "train.npz", x_train=x, y_train=y), seed=3)
    assert [len(ids) for ids in _all_ids(ds)] == [72, 8, 20]
    assert sorted(np.concatenate(_all_ids(ds))) == list(range(100))


@pytest.mark.parametrize(
    "x, expected",
    [
        (np.full((20, 4, 4, 3), 0.25, "float32"), 0.25),  # floats in [0, 1]: kept
        (np.full((20, 4, 4), 51.0), 0.2),  # floats in [0, 255]: 8-bit values
        (np.full((20, 4, 4, 1), 51, "int64"), 0.2),  # integers in [0, 255]: 8-bit values
        (np.full((20, 4, 4, 1), 13107, "uint16"), 0.2),  # 16-bit values
        (np.ones((20, 4, 4, 1), bool), 1.0),
    ],
)
def test_npz_images_are_brought_to_zero_one(tmp_path, x, expected):
    ds = data.load(_save_npz(tmp_path / "d.npz", x=x, y=np.arange(20) % 2))
    assert ds.input_shape == (4, 4, x.shape[-1] if x.ndim == 4 else 1)
    assert ds.x_train.dtype == np.float32 and np.allclose(ds.x_train, expected)


def test_npz_labels_strings_one_hot_and_num_classes(tmp_path):
    x = _numbered(30)
    names = np.array(["dog", "cat", "emu"])[np.arange(30) % 3]
    ds = data.load(_save_npz(tmp_path / "s.npz", x=x, y=names))
    assert ds.num_classes == 3
    np.testing.assert_array_equal(ds.y_test, np.searchsorted(["cat", "dog", "emu"], names[_ids(ds.x_test)]))
    ds = data.load(_save_npz(tmp_path / "h.npz", x=x, y=np.eye(5)[np.arange(30) % 3]))
    assert ds.num_classes == 5  # one-hot: its width
    np.testing.assert_array_equal(ds.y_train, _ids(ds.x_train) % 3)
    ds = data.load(_save_npz(tmp_path / "i.npz", x=x, y=(np.arange(30) % 2) * 6))
    assert ds.num_classes == 7  # indices as they are: classes 0 .. the largest


def test_load_options_apply_to_files(tmp_path):
    path = tmp_path / "d.npz"
    _save_npz(path, x=_numbered(50), y=np.arange(50) % 2)
    ds = data.load(path, input_shape=(8, 8, 3), max_examples=10, test_fraction=0.4, validation_fraction=0.3)
    assert ds.input_shape == (8, 8, 3) and len(ds.x_train) == 10 and (len(ds.x_val), len(ds.x_test)) == (15, 20)
    with pytest.raises(ValueError, match=r"apply only to the synthetic dataset"):
        data.load(path, num_classes=3)


# -- folders of images -----------------------------------------------------------------------


def test_folder_of_class_subfolders(tmp_path):
    root = _image_folder(tmp_path / "pets", ["dog", "cat", "emu"], per_class=10)
    ds = data.load(root, seed=0)
    assert ds.name == root and ds.num_classes == 3 and ds.input_shape == (6, 7, 1)  # greyscale: 1 channel
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (21, 3, 6)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        values = np.round(x[:, 0, 0, 0] * 255).astype(int)
        # Pixels 0-9: dog, 40-49: cat, 80-89: emu; classes in sorted order: cat 0, dog 1, emu 2.
        np.testing.assert_array_equal(y, np.array([1, 0, 2])[values // 40])
        assert x.min() >= 0 and x.max() <= 1
    pixels = np.round(np.concatenate([ds.x_train, ds.x_val, ds.x_test])[:, 0, 0, 0] * 255)
    assert sorted(pixels) == sorted(40 * k + i for k in range(3) for i in range(10))  # disjoint splits
    np.testing.assert_array_equal(data.load(root, seed=0).x_test, ds.x_test)
    assert not np.array_equal(data.load(root, seed=1).x_test, ds.x_test)
    rgb = data.load(_image_folder(tmp_path / "rgb", ["a", "b"], per_class=5, mode="RGB"))
    assert rgb.input_shape == (6, 7, 3)


def test_folder_with_train_and_test_folders(tmp_path):
    _image_folder(tmp_path / "d" / "train", ["a", "b", "c"], per_class=10)
    _image_folder(tmp_path / "d" / "test", ["b", "c"], per_class=3)  # may lack a class
    ds = data.load(str(tmp_path / "d"))
    assert ds.num_classes == 3 and (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (27, 3, 6)
    assert sorted(ds.y_test) == [1, 1, 1, 2, 2, 2]  # numbered by train/'s classes


def test_folder_of_several_image_sizes_is_resized_only_to_an_asked_input_shape(tmp_path):
    root = _image_folder(tmp_path / "mixed", ["a", "b"], per_class=4, sizes=[(6, 6), (9, 5)])
    with pytest.raises(ValueError, match=r"must share one size.*Received: input_shape=None and 2 sizes"):
        data.load(root)
    ds = data.load(root, input_shape=(8, 8, 3))
    assert ds.input_shape == (8, 8, 3)


def test_tfds_prepared_folder(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class TinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {"image": tfds.features.Image(shape=(8, 8, 1)), "label": tfds.features.ClassLabel(num_classes=3)}
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features), supervised_keys=("image", "label")
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(60), "test": self._generate_examples(15)}

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.full((8, 8, 1), i, np.uint8), "label": i % 3}

    TinyImages(data_dir=str(tmp_path)).download_and_prepare()
    for path in (tmp_path / "tiny_images" / "1.0.0", tmp_path / "tiny_images"):
        ds = data.load(str(path))
        assert ds.input_shape == (8, 8, 1) and ds.num_classes == 3
        assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (54, 6, 15)  # its own test split
        np.testing.assert_array_equal(ds.y_train, np.round(ds.x_train[:, 0, 0, 0] * 255).astype(int) % 3)


# -- bad files: one line naming the argument and the value received ----------------------------


def _bad_npz(tmp_path, **arrays):
    return _save_npz(tmp_path / "bad.npz", **arrays)


X, Y = _numbered(10), np.arange(10) % 2
BAD_NPZ = [
    (dict(images=X, labels=Y), r"must hold arrays `x` and `y`, or `x_train`.*Received: arrays \['images', 'labels'\]"),
    (dict(x=X), r"holds `x` but no `y`.*Received: arrays \['x'\]"),
    (dict(x_train=X, y_train=Y, x_test=X), r"holds `x_test` but no `y_test`"),
    (dict(x_val=X, y_val=Y), r"must hold arrays .*Received: arrays \['x_val', 'y_val'\]"),
    (dict(x=X, y=Y, x_train=X, y_train=Y), r"not both kinds"),
    (dict(x=X, y=Y[:7]), r"`y` of dataset .* one label per image of `x`. Received: 10 images, labels of shape \(7,\)"),
    (dict(x=X.reshape(10, -1), y=Y), r"`x` of dataset .* shape \(N, H, W\) or \(N, H, W, C\). Received: an array of shape \(10, 36\)"),
    (dict(x=np.zeros((10, 2, 2, 2, 2)), y=Y), r"Received: an array of shape \(10, 2, 2, 2, 2\)"),
    (dict(x=np.zeros((10, 3, 8, 8)), y=Y), r"channels-last .*Received: shape \(10, 3, 8, 8\), channels first"),
    (dict(x=np.array(["a"] * 10), y=Y), r"`x` of dataset .* numeric images. Received: an array of dtype <U1"),
    (dict(x=np.array([{}] * 10, dtype=object), y=Y), r"`x` of dataset .* must hold numbers. Received: an array of Python objects"),
    (dict(x=X - 128.0, y=Y), r"`x` of dataset .* in \[0, 1\].*Received: values in \[-128, 127\]; rescale"),
    (dict(x=X.astype("int32") * 4, y=Y), r"`x` of dataset .* in \[0, 255\].*Received: int32 values in \[0, 1020\]"),
    (dict(x=np.full((10, 4, 4), np.nan), y=Y), r"`x` of dataset .* finite numbers. Received: 160 NaN"),
    (dict(x=X, y=np.zeros(10)), r"at least 2 classes. Received: one class, 0"),
    (dict(x=X, y=np.array(["cat"] * 10)), r"at least 2 classes. Received: one class, 'cat'"),
    (dict(x=X, y=Y - 1), r"`y` of dataset .* integers >= 0. Received: 5 label\(s\) that are not, the first y\[0\]=-1"),
    (dict(x=X, y=Y + 0.5), r"integers >= 0. Received: 10 label\(s\)"),
    (dict(x=X, y=np.ones((10, 3))), r"one-hot rows. Received: labels of shape \(10, 3\)"),
    (dict(x_train=X, y_train=Y, x_test=X, y_test=np.array(["a"] * 10)), r"all strings or all class indices"),
]


@pytest.mark.parametrize("arrays, message", BAD_NPZ)
def test_bad_npz_files(tmp_path, arrays, message):
    path = _bad_npz(tmp_path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        data.load(path)
    assert path in str(info.value) and "\n" not in str(info.value)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"no such file or folder: .*Received: dataset='nothing/here.npz'"):
        data.load("nothing/here.npz")
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"must be .npz archives .*Received: dataset='.*table.csv'"):
        data.load(str(tmp_path / "table.csv"))
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match=r"cannot be read as one .*Received: dataset='.*text.npz'"):
        data.load(str(tmp_path / "text.npz"))
    np.save(tmp_path / "one.npy", X)
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(ValueError, match=r"named arrays .*Received: dataset='.*one.npz', a single array of shape \(10, 6, 6\)"):
        data.load(str(tmp_path / "one.npz"))


def test_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"one subfolder of images per class .*Received: a folder with no subfolders"):
        data.load(str(tmp_path / "empty"))
    (tmp_path / "no_images" / "a").mkdir(parents=True)
    (tmp_path / "no_images" / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"Received: no images in the subfolders of '.*no_images'"):
        data.load(str(tmp_path / "no_images"))
    one = _image_folder(tmp_path / "one", ["only"], per_class=3)
    with pytest.raises(ValueError, match=r"at least 2 classes .*Received: images of one class, 'only'"):
        data.load(one)
    hollow = _image_folder(tmp_path / "hollow", ["a", "b"], per_class=3)
    (tmp_path / "hollow" / "c").mkdir()
    with pytest.raises(ValueError, match=r"every class subfolder must hold images .*Received: none in \['c'\]"):
        data.load(hollow)
    _image_folder(tmp_path / "split" / "train", ["a", "b"], per_class=3)
    _image_folder(tmp_path / "split" / "test", ["a", "z"], per_class=3)
    with pytest.raises(ValueError, match=r"has classes \['z'\] that train/ lacks. Received: train classes \['a', 'b'\]"):
        data.load(str(tmp_path / "split"))
    broken = _image_folder(tmp_path / "broken", ["a", "b"], per_class=2)
    (tmp_path / "broken" / "a" / "9.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"must hold readable images. Received: '.*a/9.png'"):
        data.load(broken)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "x.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match=r"TFRecord files but no dataset_info.json.*Received: dataset="):
        data.load(str(tmp_path / "records"))


def test_names_are_not_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()  # a folder named like an offline dataset does not shadow it
    assert not data.is_path("digits") and data.load("digits").num_classes == 10
    for name in ("mnist", "emnist/letters", "mnist:3.*.*", "voc/2007", "digits-detect"):
        assert not data.is_path(name) and data.resolve(name) == name
    for path in ("my.npz", "./images", "/data/x", "~/x", "images/", "table.csv", tmp_path):
        assert data.is_path(path)


# -- TuneConfig: an absolute path and a fingerprint in config.json -----------------------------


def test_tune_config_keeps_an_absolute_path_and_a_fingerprint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _save_npz(tmp_path / "mine.npz", x=X, y=Y)
    config = TuneConfig(dataset="mine.npz")
    assert config.dataset == str(tmp_path / "mine.npz")
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", config.dataset_fingerprint)
    assert config.replace(sigma=0.5).dataset_fingerprint == config.dataset_fingerprint
    assert TuneConfig().dataset_fingerprint is None and TuneConfig().dataset == "digits"
    _save_npz(tmp_path / "mine.npz", x=X, y=1 - Y)
    assert TuneConfig(dataset="mine.npz").dataset_fingerprint != config.dataset_fingerprint
    folder = _image_folder(tmp_path / "imgs", ["a", "b"], per_class=2)
    before = TuneConfig(dataset=folder).dataset_fingerprint
    _image_folder(tmp_path / "imgs", ["a", "b"], per_class=3)
    assert TuneConfig(dataset=folder).dataset_fingerprint != before
    with pytest.raises(ValueError, match=r"no such file or folder.*Received: dataset='gone.npz'"):
        TuneConfig(dataset="gone.npz")
    with pytest.raises(ValueError, match=r"Unknown setting.*dataset_fingerprint"):
        TuneConfig().replace(dataset_fingerprint="sha256:0")


# -- the CLI: one line on stderr, and runs on files --------------------------------------------

TINY_PRESET = """
[model]
arch = "mlp"
width = 0.25
[objective]
sigma = 0.8
chips = 2
[search]
trials = 1
initial_points = 1
baselines = []
[training]
epochs = 1
batch_size = 64
trial_curve_points = 0
[report]
report_sigmas = [0.0, 1.5, 2]
report_chips = 2
"""


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def bad_files(tmp_path):
    missing_key = _save_npz(tmp_path / "keys.npz", images=X, labels=Y)
    one_class = _save_npz(tmp_path / "one.npz", x=X, y=np.zeros(10))
    (tmp_path / "empty").mkdir()
    return [
        (str(tmp_path / "bad.npz"), r"no such file or folder.*Received: dataset='.*bad.npz'"),
        (missing_key, r"must hold arrays `x` and `y`.*Received: arrays \['images', 'labels'\]"),
        (one_class, r"at least 2 classes. Received: one class, 0"),
        (str(tmp_path / "empty"), r"Received: a folder with no subfolders"),
    ]


def test_tune_with_a_bad_dataset_is_one_line(tmp_path, bad_files):
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    for dataset, message in bad_files:
        run = tmp_path / "run"
        result = CliRunner().invoke(app, ["tune", "--preset", str(preset), "--dataset", dataset, "--dir", str(run)])
        assert re.search(message, _one_error_line(result)), result.stderr
        assert not (run / "config.json").exists()
    result = CliRunner().invoke(app, ["tune", "--input-shape", "8,8", "--dir", str(tmp_path / "run")])
    assert "Received: input_shape='8,8'" in _one_error_line(result)


def test_evaluate_and_study_with_a_bad_dataset_are_one_line(tmp_path, bad_files):
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(2, "softmax")])
    model.save(tmp_path / "m.keras")
    for dataset, message in bad_files:
        result = CliRunner().invoke(
            app, ["evaluate", str(tmp_path / "m.keras"), "--dataset", dataset, "--out", str(tmp_path / "r")]
        )
        assert re.search(message, _one_error_line(result)), result.stderr
        result = CliRunner().invoke(
            app, ["study", "--dataset", dataset, "--out", str(tmp_path / "s"), "--epochs", "1", "--quiet"]
        )
        assert re.search(message, _one_error_line(result)), result.stderr


def test_evaluate_on_an_image_folder(tmp_path):
    root = _image_folder(tmp_path / "pets", ["cat", "dog", "emu"], per_class=10, sizes=[(6, 7), (9, 9)])
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")])
    model.save(tmp_path / "m.keras")
    result = CliRunner().invoke(
        app,
        ["evaluate", str(tmp_path / "m.keras"), "--dataset", root + "/", "--sigmas", "0,0.5", "--chips", "2",
         "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["dataset"] == f"{root}/test" and report["num_examples"] == 6


def test_tune_on_an_npz_end_to_end_and_a_changed_file_is_not_resumed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _numbered(120, (8, 8)), np.arange(120) % 3
    _save_npz(tmp_path / "my.npz", x=x, y=y)
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    command = ["tune", "--preset", str(preset), "--dataset", "my.npz", "--dir", "run", "--quiet"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["dataset"] == str(tmp_path / "my.npz")  # a resume from any folder finds it
    assert saved["dataset_fingerprint"] == data.fingerprint("my.npz")
    assert (tmp_path / "run" / "best_model.keras").is_file()
    best = keras.saving.load_model(tmp_path / "run" / "best_model.keras", compile=False)
    assert best.input_shape == (None, 8, 8, 1) and best.output_shape == (None, 3)  # from the data

    _save_npz(tmp_path / "my.npz", x=x, y=(y + 1) % 3)
    line = _one_error_line(CliRunner().invoke(app, command))
    assert "other settings (dataset_fingerprint: 'sha256:" in line
