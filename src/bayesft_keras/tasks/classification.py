"""The classification task: the architecture zoo on `bayesft_keras.data` datasets, scored by accuracy."""

import math
import os

import numpy as np

from bayesft_keras import tasks
from bayesft_keras.device.presets import tuning_device

# The paper's own baselines, besides the search's: one trial each (bayesft_keras.baselines).
OWN_BASELINES = ("ftna", "awp")


def zoo_hypermodel(config, ds, noise_injection=False, baseline=None):
    """The architecture zoo's hypermodel for a `TuneConfig` and data: the one `run_search` builds.

    Args:
        config: a `TuneConfig`.
        ds: the `Dataset` (its input shape and classes).
        noise_injection: the noise-injection baseline's hypermodel instead.
        baseline: "ftna" or "awp": that baseline's hypermodel, with the authors' settings.
    """
    from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
    from bayesft_keras.tuning.hypermodel import NoiseInjectionHyperModel

    if config.model is not None:
        return model_hypermodel(config, ds, noise_injection=noise_injection)
    noise, periphery, _, _ = tuning_device(config)
    kwargs = dict(
        tasks.hypermodel_options(config, ds),
        arch=config.arch,
        noise=noise,
        granularity=config.granularity,
        output_rate_range=tuple(config.output_rate_range),
        # Unset recipe values take the architecture's (paper) recipe.
        learning_rate=config.learning_rate or "preset",
        clipvalue=config.clipvalue or "preset",
        weight_decay=config.weight_decay or "preset",
        init=config.init,
        init_scale=config.init_scale,
    )
    if periphery is not None:
        kwargs["device_options"] = {"periphery": periphery}
    if baseline is not None:  # "ftna" or "awp", with the authors' settings
        from bayesft_keras.baselines import make_hypermodel

        return make_hypermodel(baseline, **kwargs)
    if noise_injection:
        return NoiseInjectionHyperModel(sigma_range=tuple(config.noise_injection_range), **kwargs)
    return BayesFTHyperModel(search_space=config.search_space, **kwargs)


def model_hypermodel(config, ds, noise_injection=False):
    """The hypermodel of `config.model` (`tune --model`): its dropout sites by `config.sites`.

    Trained from scratch with the recipe (`CUSTOM_RECIPE` unless the config sets the
    learning rate, clipping or weight decay), or from the model's own weights with
    `config.init_from_model`. The model's input shape and classes must be the dataset's.
    """
    from bayesft_keras.tuning.hypermodel import BayesFTHyperModel
    from bayesft_keras.tuning.hypermodel import NoiseInjectionHyperModel

    noise, periphery, _, _ = tuning_device(config)
    if periphery is not None:
        raise ValueError(
            f"`device` {config.device!r} has a periphery (ADCs, DACs, tiles), which a `model` "
            "search does not put on the device yet: use the architecture zoo (`arch`) or a device "
            f"without one (lognormal). Received: device={config.device!r}, model={config.model!r}"
        )
    model = _load_model(config.model)
    _check_model_data(model, ds, config.model)
    kwargs = dict(
        noise=noise,
        bits=config.bits,
        rate_range=tuple(config.rate_range),
        output_rate_range=tuple(config.output_rate_range),
        learning_rate=config.learning_rate or "preset",
        clipvalue=config.clipvalue or "preset",
        weight_decay=config.weight_decay or "preset",
        epochs=config.epochs,
        batch_size=config.batch_size,
    )
    if noise_injection:
        kwargs["sigma_range"] = tuple(config.noise_injection_range)
    cls = NoiseInjectionHyperModel if noise_injection else BayesFTHyperModel
    return cls.from_model(model, sites=site_rule(config.sites), init_from_model=config.init_from_model, **kwargs)


def site_rule(sites):
    """`TuneConfig.sites` ("all", "dense", or comma-separated layer names) as `from_model`'s `sites`."""
    from bayesft_keras.tuning import model_sites

    if sites in model_sites.RULES:
        return sites
    return [name.strip() for name in sites.split(",") if name.strip()]


def _load_model(path):
    from bayesft_keras.evaluation.files import load_model_file
    from bayesft_keras.tuning import model_sites

    return model_sites.check_model(load_model_file(path))


def _model_image_shape(path):
    """The (height, width, channels) a `--model` takes, which its data are brought to (as
    `evaluate` does); None for another input (the data keep their shape, checked later)."""
    from bayesft_keras.tuning import model_sites

    shape = model_sites.input_shape(_load_model(path))
    return shape if len(shape) == 3 and None not in shape else None


def _check_model_data(model, ds, path):
    """Raises when `model`'s input shape or classes are not those of the dataset `ds`."""
    from bayesft_keras.tuning import model_sites

    shape = model_sites.input_shape(model)
    if len(shape) != len(ds.input_shape) or any(m not in (None, d) for m, d in zip(shape, ds.input_shape)):
        raise ValueError(
            f"`model` {path} takes inputs of shape {shape}, but dataset {ds.name!r} has {ds.input_shape} "
            "(only images are brought to a model's (height, width, channels)): use a dataset of the "
            f"model's shape. Received: model={path!r}, dataset={ds.name!r}"
        )
    classes = model_sites.num_classes(model)
    if classes != ds.num_classes:
        raise ValueError(
            f"`model` {path} has {classes} output classes, but dataset {ds.name!r} has {ds.num_classes}. "
            f"Received: model={path!r}, dataset={ds.name!r}"
        )


def load_split(model, dataset="digits", split="test", data_seed=0, max_examples=None):
    """Loads `dataset` and fits its `split` to `model`'s input shape.

    Images are resized / re-channelled to an image input (H, W, C); a flat
    input (features,) takes the flattened images if the sizes agree.

    Returns:
        `(x, y)` NumPy arrays.
    """
    from bayesft_keras import data as data_lib

    if split not in ("test", "val"):
        raise ValueError(f"`split` must be 'test' or 'val'. Received: split={split!r}")
    input_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if input_shape is None or any(d is None for d in input_shape):
        raise ValueError(
            f"Model {model.name!r} needs one input of fixed shape to load a dataset for it; "
            f"its input shape is {model.input_shape}."
        )
    # A folder of images of several sizes is read at the model's size (it has none of its own).
    fit = data_lib.is_path(dataset) and len(input_shape) == 3
    ds = data_lib.load(dataset, seed=data_seed, input_shape=input_shape if fit else None)  # checked
    _check_classes(model, ds)
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_val, ds.y_val)
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    if len(input_shape) == 3:
        x = data_lib.fit_images(x, input_shape)
    elif len(input_shape) == 1 and math.prod(x.shape[1:]) == input_shape[0]:
        x = x.reshape(len(x), -1)
    else:
        raise ValueError(
            f"Images of shape {tuple(x.shape[1:])} from {dataset!r} do not match the model's "
            f"input shape {input_shape}."
        )
    return x, y


def _check_classes(model, ds):
    """Raises when the model's classes (its output's last dimension) are not the dataset's.

    A single output unit (a sigmoid) stands for 2 classes. A model of several
    outputs, or of an unknown output width, is left to the metric.
    """
    try:
        shape = model.output_shape
    except Exception:  # noqa: BLE001  (a subclassed model has no static output shape)
        return
    if not isinstance(shape, tuple) or len(shape) != 2 or not isinstance(shape[-1], int):
        return
    classes = 2 if shape[-1] == 1 else shape[-1]
    if classes != ds.num_classes:
        raise ValueError(
            f"Model {model.name!r} has {shape[-1]} output class{'es' if shape[-1] != 1 else ''}, but "
            f"dataset {ds.name!r} has "
            f"{ds.num_classes}: evaluate a model on a dataset of its own classes."
        )


class ClassificationTask(tasks.Task):
    """The architecture zoo (`bayesft_keras.architectures`) on classification datasets, by accuracy."""

    name = "classification"
    baselines = ("random", "uniform", "no_dropout", "noise_injection", *OWN_BASELINES)
    default_preset = "quick"
    score_name = "accuracy"
    short_score_name = "acc."
    device_presets = True

    def check_names(self, config):
        from bayesft_keras import architectures

        if config.model is not None:
            if not os.path.isfile(config.model):
                raise FileNotFoundError(f"Model file not found: {config.model} (`model`)")
            return
        architectures.get(config.arch)  # raises, listing the valid names

    def load_data(self, config):
        from bayesft_keras import data as data_lib

        options = tasks.data_options(config)
        if config.model is not None:
            options["input_shape"] = _model_image_shape(config.model)
        return data_lib.load(config.dataset, **options)

    def build_hypermodel(self, config, ds, noise_injection=False):
        return zoo_hypermodel(config, ds, noise_injection=noise_injection)

    def baseline_hypermodel(self, config, ds, method):
        if method not in OWN_BASELINES:
            return super().baseline_hypermodel(config, ds, method)
        return zoo_hypermodel(config, ds, baseline=method)

    def metric(self, name=None):
        return "accuracy" if name is None else name

    def chance(self, ds):
        return 1.0 / ds.num_classes

    def load_split(self, model, dataset, split="test", data_seed=0, max_examples=None):
        return load_split(model, dataset, split, data_seed, max_examples)


TASK = tasks.register(ClassificationTask())
