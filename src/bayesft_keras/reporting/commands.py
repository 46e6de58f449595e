"""The command lines that resume a run, rebuilt from the settings the run saved.

A run directory only resumes under the settings it was started with
(`tuning/artifacts.py`: `check_same_config`; the study's records likewise).
RUN/config.json holds every setting but not how it was given (preset or
flag), so the `tune` command passes every setting the CLI has a flag for; the
preset then supplies only the others, which it did the first time.
"""

import json
import shlex

# TuneConfig field -> `bayesft-keras tune` flag (tests/test_report_html.py checks
# that every flag of `tune` named after a field is here).
TUNE_FLAGS = {
    "task": "--task",
    "arch": "--arch",
    "dataset": "--dataset",
    "data_dir": "--data-dir",
    "device": "--device",
    "sigma": "--sigma",
    "chips": "--chips",
    "bits": "--bits",
    "trials": "--trials",
    "epochs": "--epochs",
    "seed": "--seed",
    "baselines": "--baselines",
    "width": "--width",
    "batch_size": "--batch-size",
    "min_clean_accuracy": "--min-clean-accuracy",
    "init": "--init",
    "init_scale": "--init-scale",
    "search_space": "--search-space",
    "warm_start_epochs": "--warm-start-epochs",
    "input_shape": "--input-shape",
    "trials_at_once": "--trials-at-once",
    "model": "--model",
    "sites": "--sites",
    "init_from_model": "--init-from-model",
}
# How the CLI spells a None or an empty list of these fields.
_NONE_SPELLING = {"bits": "none", "init": "default", "baselines": "none"}


def tune_command(config, directory):
    """`bayesft-keras tune ...` that resumes the run of `config` (RUN/config.json) in `directory`."""
    words = ["bayesft-keras", "tune", "--preset", str(config.get("name", "quick")), "--dir", str(directory)]
    for field, flag in TUNE_FLAGS.items():
        # With --model, `arch` is the model file's name, and --arch is refused; without it,
        # --sites and --init-from-model are.
        own_model = config.get("model") is not None
        if field not in config or (field == "arch" and own_model) or (
            field in ("sites", "init_from_model") and not own_model
        ):
            continue
        if field == "init_from_model":  # a flag without a value
            words += [flag] if config[field] else []
            continue
        value = _flag_value(field, config[field])
        if value is not None:
            words += [flag, value]
    return shlex.join(words)


def study_command(study, directory):
    """`bayesft-keras study ...` that resumes the study of OUT/study.json, or None where the CLI
    cannot express it (a `build_fn`, a noise model or seeds other than 0..n-1: call
    `run_study` again with the same arguments)."""
    config = study.get("config", {})
    seeds = list(study.get("seeds", ()))
    if config.get("noise") is not None or seeds != list(range(len(seeds))) or not seeds:
        return None
    words = ["bayesft-keras", "study", "--out", str(directory)]
    words += ["--dataset", str(config.get("dataset")), "--arch", str(config.get("network"))]
    words += ["--components", ",".join(study.get("components", ())), "--seeds", str(len(seeds))]
    words += ["--sigmas", ",".join(_number(s) for s in config.get("sigmas", ()))]
    for key, flag in (("chips", "--chips"), ("epochs", "--epochs"), ("batch_size", "--batch-size"),
                      ("learning_rate", "--lr"), ("width", "--width"), ("bits", "--bits")):
        if config.get(key) is not None:
            words += [flag, _number(config[key])]
    rates = study.get("variants", {}).get("dropout")
    if rates:
        words += ["--dropout-rates", ",".join(_number(r) for r in rates)]
    words += ["--k", _number(study.get("k", 2.0))]
    shape = config.get("input_shape")
    if shape:
        words += ["--input-shape", ",".join(str(int(d)) for d in shape)]
    return shlex.join(words)


def _flag_value(field, value):
    if value is None or value == [] or value == ():
        return _NONE_SPELLING.get(field)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return _number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _number(value):
    # JSON's spelling: the shortest text that reads back as the same float (0.1, 1e-05).
    return json.dumps(value)
