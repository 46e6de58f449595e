"""`run_study`: train every (variant, seed), evaluate it under drift, write the study's files.

Each finished run is stored as ``OUT/variants/<component>/<variant>_seed<k>.json``
(the shared baseline under ``variants/baseline/``) as soon as it is done, so
an interrupted study resumes where it stopped: finished runs are read back,
not re-trained. The tables, summary and plots are rebuilt from those files.
"""

import dataclasses
import inspect
import json
import math
import os
import time

from bayesft_keras.study import summary as summary_lib
from bayesft_keras.study.plots import plot_component
from bayesft_keras.study.variants import BASELINE_NAME
from bayesft_keras.study.variants import make_grid
from bayesft_keras.study.variants import parse_components
from bayesft_keras.study.variants import parse_seeds
from bayesft_keras.study.variants import parse_sigmas

# Defaults sized for a CPU: the default study on digits (13 variants x 3
# seeds) takes a few minutes on 2 cores.
DEFAULT_SIGMAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
DEFAULT_CHIPS = 10
DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 128
DEFAULT_K = 2.0

RECORD_FORMAT = "bayesft-keras/study-run"
RECORD_VERSION = 1


@dataclasses.dataclass
class StudyResult:
    """What `run_study` found and wrote.

    Attributes:
        directory: the study folder.
        components: one `summary.ComponentResult` per studied component
            (baseline and variants aggregated over seeds, comparisons).
        skipped: ``{component: reason}`` of components that do not apply.
        files: ``{"csv", "table", "summary", "config": path, "plots": {component: path}}``.
        trained: runs trained by this call; reused: runs read back from the folder.
        seconds: wall time of this call.
    """

    directory: str
    components: list
    skipped: dict
    files: dict
    trained: int
    reused: int
    seconds: float

    def statements(self):
        """``{component: [statement, ...]}``: the summary's computed sentences."""
        return {r.component: [c.statement() for c in r.comparisons] for r in self.components}

    def component(self, name):
        """The `ComponentResult` of ``name``."""
        for result in self.components:
            if result.component == name:
                return result
        raise KeyError(f"No component {name!r} in this study; it has {[r.component for r in self.components]}.")


def run_study(
    build_fn=None,
    *,
    arch=None,
    dataset="digits",
    components=None,
    seeds=DEFAULT_SEEDS,
    sigmas=DEFAULT_SIGMAS,
    chips=DEFAULT_CHIPS,
    epochs=DEFAULT_EPOCHS,
    batch_size=DEFAULT_BATCH_SIZE,
    learning_rate=None,
    width=1.0,
    noise=None,
    bits=None,
    grid=None,
    baseline=None,
    k=DEFAULT_K,
    out="study",
    input_shape=None,
    data_dir=None,
    verbose=1,
):
    """Which network components tolerate weight drift: trains variants and compares them.

    For each studied component, variants that change only that setting of a
    baseline (no dropout, no normalization, 3 layers, ReLU) are trained on
    the training split for every seed and evaluated with `evaluate_drift` on
    the test split at each sigma over ``chips`` simulated chips. Writes to
    ``out``: ``results.csv`` (every sigma), ``table.md`` (mean ± std over
    seeds at up to 7 sigmas), ``summary.md`` (statements computed from the
    numbers: where each variant helps or hurts, beyond ``k`` standard
    errors), one ``<component>.png`` per component, and the per-run JSON
    files that make the study resumable.

    Args:
        build_fn: your own network instead of ``arch``: a function called
            with the variant's settings as keyword arguments (``dropout`` a
            rate, ``normalization`` a name, ``depth`` an int, ``activation``
            a name; those it accepts, and it must accept those of the studied
            components; unchanged ones get the baseline's value), returning
            a `keras.Model` for the dataset. A model it returns compiled is
            trained as compiled; otherwise Adam with a one-cycle schedule
            (peak ``learning_rate``, default 1e-3). Finished runs are matched
            by name and settings: use a new ``out`` after changing the
            function.
        arch: an architecture of `bayesft_keras.architectures` (default
            "mlp"). The dropout rate applies to every dropout site but the
            one after the output layer; depth applies to mlp only (for other
            architectures the component is skipped, or an error if asked
            for). Trained with the architecture's recipe (mlp: Adam,
            one-cycle peak 0.01, clipvalue 0.1, weight decay 1e-4).
        dataset: a dataset name of `bayesft_keras.data.load` ("digits",
            "mnist", ...) or a `bayesft_keras.data.Dataset`.
        components: names from "dropout", "normalization", "depth",
            "activation" (list or comma-separated); None for all that apply.
        seeds: number of seeds (0..n-1) or a list of seeds. A seed fixes the
            initial weights, the training order and dropout masks, and the
            evaluation's chips.
        sigmas: drift strengths σ (w' = w·exp(θ), θ ~ N(0, σ²)); default
            0, 0.25, ..., 1.5.
        chips: simulated chips per σ and run (default 10).
        epochs: training epochs per run (default 10).
        batch_size: training batch size (default 128).
        learning_rate: peak learning rate; None for the recipe's.
        width: width multiplier of ``arch``.
        noise: the device noise model (a `DeviceNoise` with a sigma
            parameter; default `LogNormalDrift`).
        bits: device weight precision for the evaluation, or None.
        grid: ``{component: values}`` replacing the default values, e.g.
            ``{"dropout": [0.1, 0.3]}`` (defaults: dropout 0.2/0.5/0.8,
            normalization batch/layer/group, depth 6/9, activation
            tanh/sigmoid/gelu/elu; the baseline's value is always included).
        baseline: ``{setting: value}`` overriding the baseline's values.
        k: how many standard errors make a difference significant (default 2).
        out: the study folder; reuse it to resume.
        input_shape: (height, width, channels) a named dataset's images are
            resized to, e.g. (28, 28, 1) for lenet5 on the 8x8 digits; None
            keeps their own.
        data_dir: tfds data directory for named tfds datasets.
        verbose: 0 silent, 1 a progress bar over runs (with the current
            run's epochs and chips).

    Returns:
        A `StudyResult`.
    """
    start = time.perf_counter()
    parse_components(components)  # early, before any data is loaded
    seeds = parse_seeds(seeds)
    sigmas = parse_sigmas(sigmas)
    chips = _check_int("chips", chips)
    epochs = _check_int("epochs", epochs)
    batch_size = _check_int("batch_size", batch_size)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k > 0:
        raise ValueError(f"`k` must be a positive number of standard errors. Received: k={k!r}")
    if learning_rate is not None and (
        isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0
    ):
        raise ValueError(
            f"`learning_rate` must be a positive number or None. Received: learning_rate={learning_rate!r}"
        )
    noise = _check_noise(noise)
    from bayesft_keras.device import quantization

    bits = quantization.validate_bits(bits, "bits")
    if out is None or not str(out).strip():
        raise ValueError(f"`out` must be a folder path. Received: out={out!r}")
    directory = os.fspath(out)

    ds = _load_dataset(dataset, data_dir, input_shape)
    if build_fn is not None:
        if arch is not None:
            raise ValueError(
                f"Give `build_fn` or `arch`, not both. Received: arch={arch!r} and a build_fn."
            )
        if width != 1.0:
            raise ValueError(
                f"`width` applies to `arch` only; `build_fn` sets its own sizes. Received: width={width!r}"
            )
        builder = _FunctionBuilder(build_fn)
    else:
        builder = _ZooBuilder(arch or "mlp", width, ds)
    study_grid = make_grid(components, grid, baseline, builder.supports_depth, builder.name)
    builder.check(study_grid)

    recipe = builder.recipe
    config = {
        "network": builder.name,
        "dataset": ds.name,
        "input_shape": [int(d) for d in ds.input_shape],
        "train_examples": int(len(ds.x_train)),
        "test_examples": int(len(ds.x_test)),
        "sigmas": list(sigmas),
        "chips": chips,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate or recipe.learning_rate),
        "clipvalue": recipe.clipvalue,
        "weight_decay": recipe.weight_decay,
        "width": builder.width,
        "noise": _serialize_noise(noise),
        "bits": bits,
    }
    variants = study_grid.all_variants()
    jobs = [(v, s) for v in variants for s in seeds]
    # Finished runs, checked against these settings before anything is trained.
    records = {
        (v, s): _load_record(os.path.join(directory, v.path(s)), v, s, config) for v, s in jobs
    }
    _write_json(os.path.join(directory, "study.json"), {
        "config": config,
        "components": list(study_grid.components),
        "seeds": list(seeds),
        "baseline": study_grid.baseline_values,
        "variants": {c: [v.value for v in vs] for c, vs in study_grid.variants.items()},
        "skipped": study_grid.skipped,
        "k": float(k),
    })

    reused = sum(r is not None for r in records.values())
    trained = 0
    with _Progress(verbose, len(jobs), f"{builder.name} on {ds.name}") as progress:
        progress.skip(reused)
        for variant, seed in jobs:
            if records[variant, seed] is not None:
                continue
            progress.start_run(f"{variant.component}: {variant.label} · seed {seed}", epochs)
            record = _run(builder, variant, seed, ds, config, noise, bits, progress)
            # Stored as soon as it is done: an interrupted study resumes after it.
            _write_json(os.path.join(directory, variant.path(seed)), record)
            records[variant, seed] = record
            trained += 1
            progress.finish_run()

    stats = {BASELINE_NAME: _stats(study_grid.baseline, seeds, records)}
    for component in study_grid.components:
        stats[component] = [_stats(v, seeds, records) for v in study_grid.variants[component]]
    labels = {c: study_grid.baseline_label(c) for c in study_grid.components}
    results = summary_lib.compare_components(stats, labels, k=float(k))

    files = {
        "config": os.path.join(directory, "study.json"),
        "csv": os.path.join(directory, "results.csv"),
        "table": os.path.join(directory, "table.md"),
        "summary": os.path.join(directory, "summary.md"),
        "plots": {},
    }
    _write_text(files["csv"], summary_lib.csv_text(results))
    _write_text(files["table"], summary_lib.markdown_table(results))
    context = {
        "title": f"Component study: {builder.name} on {ds.name}",
        "setup": _setup_sentence(builder, ds, config, seeds, noise),
    }
    _write_text(files["summary"], summary_lib.summary_markdown(results, context, study_grid.skipped))
    for result in results:
        path = os.path.join(directory, f"{result.component}.png")
        files["plots"][result.component] = plot_component(
            result, path,
        )
    return StudyResult(
        directory=directory,
        components=results,
        skipped=dict(study_grid.skipped),
        files=files,
        trained=trained,
        reused=reused,
        seconds=time.perf_counter() - start,
    )


# -- networks ------------------------------------------------------------------


class _ZooBuilder:
    """Variants of an architecture of the zoo, trained with its recipe."""

    def __init__(self, arch, width, ds):
        from bayesft_keras import architectures
        from bayesft_keras.tuning.hypermodel import RECIPES

        entry = architectures.get(arch)
        self.name = entry.name
        self.width = width
        self.input_shape = ds.input_shape
        self.num_classes = ds.num_classes
        self.supports_depth = "depth" in entry.options
        self.recipe = RECIPES[self.name]

    def _kwargs(self, variant):
        from bayesft_keras import architectures

        settings = variant.kwargs()
        kwargs = {
            "input_shape": self.input_shape,
            "num_classes": self.num_classes,
            "width": self.width,
        }
        for key in ("normalization", "activation", "depth"):
            if key in settings:
                kwargs[key] = settings[key]
        rate = settings.get("dropout", 0.0)
        # Dropout goes after every hidden layer; dropping the output layer's
        # logits is a different (regularization) choice that the paper tunes apart.
        hidden = [s for s in architectures.sites(self.name, **kwargs) if s != "output"]
        if rate and not hidden:
            raise ValueError(
                f"{self.name} with {settings} has no dropout site besides the output's: "
                "dropout cannot be studied."
            )
        return kwargs, {site: rate for site in hidden}

    def check(self, grid):
        """Validates every variant's settings before anything is trained."""
        from bayesft_keras import architectures

        for variant in grid.all_variants():
            kwargs, _ = self._kwargs(variant)
            architectures.blueprint(self.name, **kwargs)

    def build(self, variant):
        from bayesft_keras import architectures

        kwargs, dropout = self._kwargs(variant)
        return architectures.build(self.name, dropout=dropout, **kwargs)


class _FunctionBuilder:
    """Variants from the user's ``build_fn(**settings) -> keras.Model``."""

    supports_depth = True
    width = None

    def __init__(self, build_fn):
        from bayesft_keras.tuning.hypermodel import CUSTOM_RECIPE

        if not callable(build_fn):
            raise ValueError(
                "`build_fn` must be a function (**settings) -> keras.Model. "
                f"Received: build_fn={build_fn!r}"
            )
        self.build_fn = build_fn
        self.name = getattr(build_fn, "__name__", type(build_fn).__name__)
        self.recipe = CUSTOM_RECIPE

    def _accepted(self):
        """The settings the function takes as keywords; None when it takes any (``**kwargs``)."""
        try:
            parameters = inspect.signature(self.build_fn).parameters.values()
        except (TypeError, ValueError):  # no signature to read: pass every setting
            return None
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check(self, grid):
        """The function must accept the setting of every studied component."""
        accepted = self._accepted()
        if accepted is None:
            return
        missing = [c for c in grid.components if c not in accepted]
        if missing:
            raise ValueError(
                f"`build_fn` {self.name!r} must accept the keyword argument(s) {missing} "
                f"(the settings of the studied components); it accepts {sorted(accepted)}."
            )

    def arguments(self, variant):
        """The variant's settings that the function accepts (all with ``**kwargs``)."""
        accepted = self._accepted()
        return {k: v for k, v in variant.kwargs().items() if accepted is None or k in accepted}

    def build(self, variant):
        import keras

        arguments = self.arguments(variant)
        model = self.build_fn(**arguments)
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"`build_fn` must return a keras.Model. It returned {type(model).__name__} "
                f"for {arguments}."
            )
        return model


# -- one run -------------------------------------------------------------------


def _run(builder, variant, seed, ds, config, noise, bits, progress):
    """Trains ``variant`` with ``seed`` and evaluates it under drift; returns its record."""
    import keras

    from bayesft_keras.evaluation import evaluate_drift
    from bayesft_keras.tuning.optimizers import one_cycle_adam

    keras.utils.set_random_seed(seed)
    model = builder.build(variant)
    if not getattr(model, "compiled", False):
        steps = config["epochs"] * math.ceil(len(ds.x_train) / config["batch_size"])
        model.compile(
            optimizer=one_cycle_adam(
                config["learning_rate"], steps, config["weight_decay"], config["clipvalue"]
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    began = time.perf_counter()
    history = model.fit(
        ds.x_train, ds.y_train, epochs=config["epochs"], batch_size=config["batch_size"],
        verbose=0, callbacks=[progress.epoch_callback()],
    )
    trained = time.perf_counter()
    progress.evaluating(len(config["sigmas"]) * config["chips"])
    report = evaluate_drift(
        model,
        (ds.x_test, ds.y_test),
        sigmas=config["sigmas"],
        chips=config["chips"],
        seed=seed,
        noise=noise,
        bits=bits,
        name=f"{variant.component}/{variant.name}",
        dataset=ds.name,
        progress=progress.chip_callback(),
    )
    last = {key: float(values[-1]) for key, values in history.history.items()}
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "component": variant.component,
        "variant": variant.name,
        "label": variant.label,
        "value": variant.value,
        "settings": variant.kwargs(),
        "seed": seed,
        "config": config,
        "parameters": int(model.count_params()),
        "training": {"final": last, "seconds": trained - began},
        "evaluation_seconds": time.perf_counter() - trained,
        "report": report.to_dict(),
    }


def _load_record(path, variant, seed, config):
    """A finished run's record, or None when there is none yet; raises if it is from other settings."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read the finished run {path}: {e}. Delete it to re-run it.") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{path} is not a study run record; delete it or use another `out` folder.")
    stored = record.get("config", {})
    changed = [f"{key}: {stored.get(key)!r} there, {value!r} now" for key, value in config.items()
               if stored.get(key) != value]
    if record.get("settings") != variant.kwargs():
        changed.append(f"settings: {record.get('settings')!r} there, {variant.kwargs()!r} now")
    if changed:
        raise ValueError(
            f"The finished run {path} was made with other settings ({'; '.join(changed)}). "
            "Use another `out` folder, or delete that folder to start over."
        )
    if record.get("seed") != seed:
        raise ValueError(f"{path} holds seed {record.get('seed')!r}, not {seed}; delete it to re-run it.")
    return record


def _stats(variant, seeds, records):
    runs = [summary_lib.Run.from_record(records[variant, s]) for s in seeds]
    return summary_lib.VariantStats.from_runs(runs)


# -- helpers -------------------------------------------------------------------


def _setup_sentence(builder, ds, config, seeds, noise):
    from bayesft_keras.device import noise as noise_lib

    sigmas = config["sigmas"]
    if noise is None or isinstance(noise, noise_lib.LogNormalDrift):
        noise_text = "log-normal drift: w' = w·exp(θ), θ ~ N(0, σ²)"
    else:
        noise_text = f"{type(noise).__name__}, sweeping its σ"
    recipe = f"Adam, one-cycle peak learning rate {config['learning_rate']:g}"
    if config["clipvalue"]:
        recipe += f", clipvalue {config['clipvalue']:g}"
    if config["weight_decay"]:
        recipe += f", weight decay {config['weight_decay']:g}"
    if isinstance(builder, _FunctionBuilder):
        recipe += ", unless build_fn compiled the model"
        sites = ""
    else:
        sites = " Dropout variants apply the rate after every hidden layer (not after the output layer)."
    return (
        f"Each variant was trained {len(seeds)} times (seeds {', '.join(map(str, seeds))}) for "
        f"{config['epochs']} epochs ({recipe}; batch {config['batch_size']}) on "
        f"{config['train_examples']} training images of {ds.name}, then scored on its "
        f"{config['test_examples']} test images on {config['chips']} simulated chips per σ "
        f"({noise_text}), σ = {', '.join(f'{s:g}' for s in sigmas)}."
        + sites
        + (f" Device precision: {config['bits']} bits." if config["bits"] else "")
    )


def _load_dataset(dataset, data_dir, input_shape):
    from bayesft_keras import data

    if isinstance(dataset, data.Dataset):
        return dataset if input_shape is None else dataset.fit_to(tuple(input_shape))
    if not isinstance(dataset, str):
        raise ValueError(
            f"`dataset` must be a dataset name (e.g. 'digits') or a bayesft_keras.data.Dataset. "
            f"Received: dataset={dataset!r}"
        )
    return data.load(dataset, data_dir=data_dir, input_shape=input_shape)


def _check_noise(noise):
    from bayesft_keras.device import noise as noise_lib

    noise = noise_lib.get(noise)
    if noise is not None and not any(n.split(".")[-1] == "sigma" for n in noise.param_names):
        raise ValueError(
            "The study sweeps a drift sigma: `noise` needs a `sigma` parameter (e.g. "
            f"LogNormalDrift). Received: noise={noise!r}"
        )
    return noise


def _serialize_noise(noise):
    from bayesft_keras.device import noise as noise_lib

    return None if noise is None else noise_lib.serialize(noise)


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    return value


def _write_text(path, text):
    """Writes atomically, so an interrupted study never leaves a half-written file."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


def _write_json(path, data):
    _write_text(path, json.dumps(data, indent=1))


class _Progress:
    """A rich progress bar over runs, with the current run's epochs and chips (verbose >= 1)."""

    def __init__(self, verbose, total, title):
        self.verbose, self.total, self.title = verbose, total, title
        self._bar = None

    def __enter__(self):
        if self.verbose:
            from rich.progress import BarColumn
            from rich.progress import MofNCompleteColumn
            from rich.progress import Progress
            from rich.progress import TextColumn
            from rich.progress import TimeElapsedColumn
            from rich.progress import TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self._bar.start()
            self._study = self._bar.add_task(f"study: {self.title}", total=self.total)
            self._current = self._bar.add_task("", total=1, visible=False)
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False

    def start_run(self, description, epochs):
        self._description = description
        if self._bar is not None:
            self._bar.update(
                self._current, description=f"  {description}: training", total=epochs,
                completed=0, visible=True,
            )

    def epoch_callback(self):
        import keras

        bar, task = self._bar, getattr(self, "_current", None)
        return keras.callbacks.LambdaCallback(
            on_epoch_end=(lambda epoch, logs: bar.advance(task)) if bar is not None else None
        )

    def evaluating(self, total):
        if self._bar is not None:
            self._bar.update(
                self._current, description=f"  {self._description}: drift evaluation",
                total=total, completed=0,
            )

    def chip_callback(self):
        if self._bar is None:
            return False
        return lambda done, total: self._bar.update(self._current, completed=done, total=total)

    def skip(self, count):
        """Counts ``count`` finished runs found in the folder as done."""
        if self._bar is not None and count:
            self._bar.advance(self._study, count)

    def finish_run(self):
        if self._bar is not None:
            self._bar.advance(self._study)
            self._bar.update(self._current, visible=False)
