"""The Task interface: what a search and `bayesft-keras evaluate` need from a kind of problem."""


class Task:
    """One kind of problem (classification, detection, ...) that BayesFT can tune and score.

    A task turns a `TuneConfig` into data and hypermodels, names the metric
    that drift is scored by, and loads a split of a dataset for a saved model.
    Subclasses set the attributes and override the methods; register an
    instance with `bayesft_keras.tasks.register`.

    Attributes:
        name: the task's name, the value of `TuneConfig.task`.
        baselines: the `TuneConfig.baselines` this task can run.
        default_preset: the preset `bayesft-keras tune --task NAME` starts from.
        score_name: the metric's name in a results table's title.
        short_score_name: the metric's name in a results table's columns.
        device_presets: whether the task takes `--device` presets.
    """

    name = None
    baselines = ()
    default_preset = "quick"
    score_name = "accuracy"
    short_score_name = "acc."
    device_presets = False

    def check_names(self, config):
        """Raises `ValueError` on a `TuneConfig` whose architecture or dataset this task lacks."""
        raise NotImplementedError

    def load_data(self, config):
        """The `Dataset` of a `TuneConfig` (dataset, input_shape, data_dir, seed, max_train_examples)."""
        raise NotImplementedError

    def build_hypermodel(self, config, ds, noise_injection=False):
        """The search's hypermodel (or its noise-injection baseline) for a `TuneConfig` and data."""
        raise NotImplementedError

    def baseline_hypermodel(self, config, ds, method):
        """The hypermodel of one of the task's own baselines (e.g. "ftna"), one trial each."""
        raise ValueError(f"Task {self.name!r} has no baseline {method!r}.")

    def metric(self, name=None):
        """The metric drift is scored by: a Keras metric name or object."""
        raise NotImplementedError

    def chance(self, ds):
        """The score of guessing on `ds` (e.g. 1 / classes), or None where there is none."""
        return None

    def owns_dataset(self, dataset):
        """Whether `dataset` names one of this task's datasets (the default task owns the rest)."""
        return False

    def check_metric(self, metric, dataset):
        """Raises `ValueError` on a metric of this task asked for on another task's `dataset`."""

    def load_split(self, model, dataset, split="test", data_seed=0, max_examples=None):
        """`(x, y)` of one split ("test" or "val") of `dataset`, fitted to `model`'s input."""
        raise NotImplementedError

    def evaluation_metric(self, metric):
        """The metric `evaluate_file` scores with, from the asked one (None: not asked)."""
        return metric

    def __repr__(self):
        return f"<Task {self.name!r}>"


def data_options(config):
    """The keyword arguments of a task's dataset loader from a `TuneConfig`."""
    return dict(
        input_shape=config.input_shape,
        data_dir=config.data_dir,
        seed=config.seed,
        max_examples=config.max_train_examples,
    )


def hypermodel_options(config, ds):
    """The keyword arguments every task's hypermodel takes alike from a `TuneConfig` and its data."""
    return dict(
        input_shape=ds.input_shape,
        num_classes=ds.num_classes,
        bits=config.bits,
        rate_range=tuple(config.rate_range),
        epochs=config.epochs,
        batch_size=config.batch_size,
        width=config.width,
        normalization=config.normalization,
        activation=config.activation,
    )
