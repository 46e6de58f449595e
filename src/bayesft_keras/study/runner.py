"""`run_study`: train every (variant, seed), evaluate it under drift, write the study's files.

Each finished run is stored as `OUT/variants/<component>/<variant>_seed<k>.json`
(the shared baseline under `variants/baseline/`) as soon as it is done, so
an interrupted study resumes where it stopped: finished runs are read back,
not re-trained. The tables, summary and plots are rebuilt from those files.
"""

import dataclasses
import os
import time

from bayesft_keras.evaluation.progress import progress as progress_bar
from bayesft_keras.reporting import write_report
from bayesft_keras.study import records as records_lib
from bayesft_keras.study import statistics
from bayesft_keras.study import summary as summary_lib
from bayesft_keras.study import text
from bayesft_keras.study.builders import FunctionBuilder
from bayesft_keras.study.builders import ZooBuilder
from bayesft_keras.study.plots import plot_component
from bayesft_keras.study.records import RECORD_FORMAT  # noqa: F401  (re-exported: it lived here)
from bayesft_keras.study.records import RECORD_VERSION  # noqa: F401
from bayesft_keras.study.variants import make_grid
from bayesft_keras.study.variants import parse_components
from bayesft_keras.study.variants import parse_seeds
from bayesft_keras.study.variants import parse_sigmas
from bayesft_keras.utils import checks
from bayesft_keras.utils import files as files_lib

# Defaults sized for a CPU: the default study on digits (13 variants x 3
# seeds) takes a few minutes on 2 cores.
DEFAULT_SIGMAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
DEFAULT_CHIPS = 10
DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 128
DEFAULT_K = 2.0


@dataclasses.dataclass
class StudyResult:
    """What `run_study` found and wrote.

    Attributes:
        directory: the study folder.
        components: one `summary.ComponentResult` per studied component
            (baseline and variants aggregated over seeds, comparisons).
        skipped: `{component: reason}` of components that do not apply.
        files: `{"csv", "table", "summary", "config", "report": path, "plots": {component: path}}`.
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
        """`{component: [statement, ...]}`: the summary's computed sentences."""
        return {r.component: [c.statement() for c in r.comparisons] for r in self.components}

    def component(self, name):
        """The `ComponentResult` of `name`."""
        for result in self.components:
            if result.component == name:
                return result
        raise KeyError(f"No component {name!r} in this study; it has {[r.component for r in self.components]}.")


def run_study(
    build_fn=None,
    *,
    # Grouped by concept: network and data; the sweep; training; device; the grid; output.
    arch=None, dataset="digits", components=None,
    seeds=DEFAULT_SEEDS, sigmas=DEFAULT_SIGMAS, chips=DEFAULT_CHIPS,
    epochs=DEFAULT_EPOCHS, batch_size=DEFAULT_BATCH_SIZE, learning_rate=None, width=1.0,
    noise=None, bits=None,
    grid=None, baseline=None, k=DEFAULT_K,
    out="study", input_shape=None, data_dir=None, verbose=1,
):
    """Which network components tolerate weight drift: trains variants and compares them.

    For each studied component, variants that change only that setting of a
    baseline (no dropout, no normalization, 3 layers, ReLU) are trained on
    the training split for every seed and evaluated with `evaluate_drift` on
    the test split at each sigma over `chips` simulated chips. Writes to
    `out`: `results.csv` (every sigma), `table.md` (mean ± std over
    seeds at up to 7 sigmas), `summary.md` (statements computed from the
    numbers: where each variant helps or hurts, beyond `k` standard
    errors), one `<component>.png` per component, `report.html` (all of
    it on one page), and the per-run JSON files that make the study
    resumable.

    Args:
        build_fn: your own network instead of `arch`: a function called
            with the variant's settings as keyword arguments (`dropout` a
            rate, `normalization` a name, `depth` an int, `activation`
            a name; those it accepts, and it must accept those of the studied
            components; unchanged ones get the baseline's value), returning
            a `keras.Model` for the dataset. A model it returns compiled is
            trained as compiled; otherwise Adam with a one-cycle schedule
            (peak `learning_rate`, default 1e-3). Finished runs are matched
            by name and settings: use a new `out` after changing the
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
        width: width multiplier of `arch`.
        noise: the device noise model (a `DeviceNoise` with a sigma
            parameter; default `LogNormalDrift`).
        bits: device weight precision for the evaluation, or None.
        grid: `{component: values}` replacing the default values, e.g.
            `{"dropout": [0.1, 0.3]}` (defaults: dropout 0.2/0.5/0.8,
            normalization batch/layer/group, depth 6/9, activation
            tanh/sigmoid/gelu/elu; the baseline's value is always included).
        baseline: `{setting: value}` overriding the baseline's values.
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
    chips = checks.count("chips", chips)
    epochs = checks.count("epochs", epochs)
    batch_size = checks.count("batch_size", batch_size)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not k > 0:
        raise ValueError(f"`k` must be a positive number of standard errors. Received: k={k!r}")
    learning_rate = checks.positive("learning_rate", learning_rate, allow_none=True)
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
        builder = FunctionBuilder(build_fn)
    else:
        builder = ZooBuilder(arch or "mlp", width, ds)
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
        (v, s): records_lib.load(os.path.join(directory, v.path(s)), v, s, config) for v, s in jobs
    }
    records_lib.save(os.path.join(directory, "study.json"), {
        "config": config,
        "components": list(study_grid.components),
        "seeds": list(seeds),
        "baseline": study_grid.baseline_values,
        "variants": {c: [v.value for v in vs] for c, vs in study_grid.variants.items()},
        "skipped": study_grid.skipped,
        "k": float(k),
    })

    reused = sum(r is not None for r in records.values())
    todo = [job for job in jobs if records[job] is None]
    work = epochs + len(sigmas) * chips  # progress units of one run
    description = f"study: {builder.name} on {ds.name}"
    with progress_bar(bool(verbose), len(todo) * work, description) as advance:
        for variant, seed in todo:
            record = _run(builder, variant, seed, ds, config, noise, bits, advance if verbose else None)
            # Stored as soon as it is done: an interrupted study resumes after it.
            records_lib.save(os.path.join(directory, variant.path(seed)), record)
            records[variant, seed] = record
    results = statistics.compare(study_grid, seeds, records, float(k))

    files = {
        "config": os.path.join(directory, "study.json"),
        "csv": os.path.join(directory, "results.csv"),
        "table": os.path.join(directory, "table.md"),
        "summary": os.path.join(directory, "summary.md"),
        "plots": {},
    }
    files_lib.write_text(files["csv"], summary_lib.csv_text(results))
    files_lib.write_text(files["table"], summary_lib.markdown_table(results))
    context = {
        "title": text.title(builder, ds),
        "setup": text.setup_sentence(builder, ds, config, seeds, noise),
    }
    files_lib.write_text(files["summary"], summary_lib.summary_markdown(results, context, study_grid.skipped))
    for result in results:
        path = os.path.join(directory, f"{result.component}.png")
        files["plots"][result.component] = plot_component(result, path, chance=1.0 / ds.num_classes)
    files["report"] = os.fspath(write_report(directory))
    return StudyResult(
        directory=directory,
        components=results,
        skipped=dict(study_grid.skipped),
        files=files,
        trained=len(todo),
        reused=reused,
        seconds=time.perf_counter() - start,
    )


# -- one run -------------------------------------------------------------------


def _run(builder, variant, seed, ds, config, noise, bits, advance):
    """Trains `variant` with `seed` and evaluates it under drift; returns its record."""
    import keras

    from bayesft_keras.evaluation import evaluate_drift
    from bayesft_keras.tuning import recipe

    keras.utils.set_random_seed(seed)
    model = builder.build(variant)
    if not getattr(model, "compiled", False):
        steps = config["epochs"] * recipe.steps_per_epoch(ds.x_train, config["batch_size"])
        optimizer = recipe.one_cycle_adam(
            config["learning_rate"], steps, config["weight_decay"], config["clipvalue"]
        )
        recipe.compile_model(model, optimizer, steps)
    began = time.perf_counter()
    callbacks = [] if advance is None else [
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: advance(1))
    ]
    history = model.fit(
        ds.x_train, ds.y_train, epochs=config["epochs"], batch_size=config["batch_size"],
        verbose=0, callbacks=callbacks,
    )
    trained = time.perf_counter()
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
        progress=False if advance is None else _chip_steps(advance),
    )
    last = {key: float(values[-1]) for key, values in history.history.items()}
    return records_lib.make(
        variant, seed, config, model.count_params(),
        training={"final": last, "seconds": trained - began},
        evaluation_seconds=time.perf_counter() - trained,
        report=report,
    )


def _chip_steps(advance):
    """`evaluate_drift`'s `progress(done, total)` as steps of the study's bar."""
    done = [0]

    def on_chips(now, total):
        advance(now - done[0])
        done[0] = now

    return on_chips


# -- helpers -------------------------------------------------------------------


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
