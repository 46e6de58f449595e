"""The detection task for the tuner and the CLI: data, hypermodel and metric from settings.

Registered as the task "detection" (`bayesft_keras.tasks.get("detection")`),
which `bayesft_keras.tuning.search.run_search` and `bayesft-keras evaluate`
look up for `--task detection` and detection datasets. Its methods call
these functions (each takes the same settings as its classification
counterpart):

- `load_data(config)` for `data.load(config.dataset, ...)`,
- `build_hypermodel(config, ds, noise_injection=False)`: run_search's
  `build_hypermodel` hook,
- `metric(name)` for the metric of `DriftObjective` and of the reports,
- `load_split(dataset, split, input_shape, ...)` for
  `evaluation.files.load_data_for`.
"""

from bayesft_keras import tasks
from bayesft_keras.detection import data as data_lib
from bayesft_keras.detection import model as model_lib
from bayesft_keras.detection.metrics import MAP_KINDS
from bayesft_keras.detection.metrics import DetectionMAP

TASK = "detection"
ARCHITECTURES = (model_lib.ARCH_NAME,)
DEFAULT_DATASET = data_lib.DIGITS_DETECT
DEFAULT_METRIC = "map50"


def check_names(config):
    """Validates a `TuneConfig`'s architecture and dataset for detection."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(
            f"Unknown detection architecture {config.arch!r}; valid: {', '.join(ARCHITECTURES)}"
        )
    if config.dataset not in data_lib.available():
        raise ValueError(
            f"Unknown detection dataset {config.dataset!r}; valid: {', '.join(data_lib.available())}"
        )


def load_data(config):
    """The `DetectionDataset` of a `TuneConfig` (dataset, input_shape, data_dir, seed, max_train_examples)."""
    check_names(config)
    return data_lib.load(config.dataset, **tasks.data_options(config))


def build_hypermodel(config, ds, noise_injection=False):
    """`DetectionHyperModel` (or its noise-injection baseline) from a `TuneConfig` and data."""
    from bayesft_keras.detection.hypermodel import DetectionHyperModel
    from bayesft_keras.detection.hypermodel import DetectionNoiseInjectionHyperModel
    from bayesft_keras.device.noise import LogNormalDrift

    kwargs = dict(
        tasks.hypermodel_options(config, ds),
        noise=LogNormalDrift(config.sigma),
        learning_rate=config.learning_rate,
        clipvalue=config.clipvalue,
        weight_decay=config.weight_decay,
    )
    if noise_injection:
        return DetectionNoiseInjectionHyperModel(
            sigma_range=tuple(config.noise_injection_range), **kwargs
        )
    return DetectionHyperModel(**kwargs)


def metric(name=DEFAULT_METRIC):
    """The `DetectionMAP` of a metric name: "map50", "map" (COCO) or "map75"."""
    if name not in MAP_KINDS:
        raise ValueError(
            f"Detection metric must be one of {list(MAP_KINDS)}. Received: metric={name!r}"
        )
    return DetectionMAP(name)


def load_split(dataset, split="test", input_shape=None, data_seed=0, max_examples=None, data_dir=None):
    """`(x, y)` of one split of a detection dataset, fitted to a model's input shape."""
    if split not in ("test", "val"):
        raise ValueError(f"`split` must be 'test' or 'val'. Received: split={split!r}")
    ds = data_lib.load(dataset, input_shape=input_shape, data_dir=data_dir, seed=data_seed)
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_val, ds.y_val)
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    return x, y


class DetectionTask(tasks.Task):
    """The CenterNet-style detector on digits-detect / VOC / COCO, scored by mAP@0.5."""

    name = TASK
    # The paper's own baselines (ftna, awp) are classifiers: not for detection.
    baselines = ("random", "uniform", "no_dropout", "noise_injection")
    default_preset = "detection-quick"
    score_name = "mAP@0.5"
    short_score_name = "mAP@0.5"
    device_presets = False

    # The methods look the module's functions up when called, so that a test can patch them.
    def check_names(self, config):
        check_names(config)

    def load_data(self, config):
        return load_data(config)

    def build_hypermodel(self, config, ds, noise_injection=False):
        return build_hypermodel(config, ds, noise_injection=noise_injection)

    def metric(self, name=None):
        return metric(DEFAULT_METRIC if name is None else name)

    def owns_dataset(self, dataset):
        return dataset in data_lib.available()

    def check_metric(self, metric, dataset):
        if isinstance(metric, str) and metric in MAP_KINDS:
            raise ValueError(
                f"Metric {metric!r} scores object detection: use a detection dataset "
                f"({', '.join(data_lib.available())}). Received: dataset={dataset!r}"
            )

    def load_split(self, model, dataset, split="test", data_seed=0, max_examples=None):
        # Padded boxes as labels.
        return load_split(dataset, split, tuple(model.input_shape[1:]), data_seed, max_examples)

    def evaluation_metric(self, metric):
        # mAP of the decoded outputs; "accuracy" is the CLI's default, meaningless here.
        return self.metric(None if metric in (None, "accuracy") else metric)


tasks.register(DetectionTask())
